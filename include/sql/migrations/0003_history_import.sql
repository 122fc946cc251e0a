-- 0003 history import: the one-time import of trackers' detailed time exports (CSV), with the proof
-- finance asks for: counts per entity in the export and imported, and every row that could not be
-- mapped, listed with its file, line and reason.

CREATE TABLE closeout_data.history_imports (
    import_id        bigserial PRIMARY KEY,
    source           text NOT NULL,
    files            jsonb NOT NULL,
    started_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at      timestamptz,
    status           text NOT NULL CHECK (status IN ('running', 'imported', 'rejected', 'failed')),
    cutoff           date,
    counts           jsonb NOT NULL DEFAULT '{}'::jsonb,
    accepted_reason  text,
    sync_run_id      bigint REFERENCES closeout_data.sync_runs,
    airflow_run_id   text
);

CREATE TABLE closeout_data.history_unmapped (
    import_id   bigint NOT NULL REFERENCES closeout_data.history_imports,
    file        text NOT NULL,
    line        integer NOT NULL,
    field       text NOT NULL,
    value       text,
    reason      text NOT NULL,
    raw         jsonb NOT NULL,
    PRIMARY KEY (import_id, file, line, field)
);

CREATE VIEW closeout.history_imports AS
SELECT import_id, source, files, started_at, finished_at, status, cutoff, counts, accepted_reason, sync_run_id
FROM closeout_data.history_imports;

CREATE VIEW closeout.history_unmapped AS
SELECT import_id, file, line, field, value, reason, raw FROM closeout_data.history_unmapped;
