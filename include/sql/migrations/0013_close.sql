-- 0013 close: the month-end close runs (closeout_month_end_close), one row per Airflow run that tried to close
-- a period, with what each step did.
--
-- steps is {"<step>": {"status": "running|succeeded|failed|skipped", "summary": {...}, "started_at", "finished_at",
-- "error"}}: a retried task finds what its step already did there. The partial unique index is the warehouse
-- guard that keeps two closes from interleaving, whichever Airflow deployment triggered them: only one close run
-- may be 'running' at any time (max_active_runs=1 only covers one deployment).

CREATE TABLE closeout_data.close_runs (
    close_run_id    bigserial PRIMARY KEY,
    period          text NOT NULL CHECK (period ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    airflow_run_id  text NOT NULL,
    dry_run         boolean NOT NULL,
    params          jsonb NOT NULL DEFAULT '{}',
    status          text NOT NULL
                    CHECK (status IN ('running', 'failed', 'succeeded', 'already_closed')),
    steps           jsonb NOT NULL DEFAULT '{}',
    message         text,
    report_url      text,
    started_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at     timestamptz,
    error           text,
    UNIQUE (airflow_run_id)
);

CREATE UNIQUE INDEX close_runs_one_running ON closeout_data.close_runs ((true)) WHERE status = 'running';
CREATE INDEX close_runs_period ON closeout_data.close_runs (period, status);

-- Public: one row per close run, newest first when ordered by started_at.
CREATE VIEW closeout.period_closes AS
SELECT close_run_id, period, airflow_run_id, dry_run, status, steps, message, report_url, started_at, finished_at,
       error, params
FROM closeout_data.close_runs;
