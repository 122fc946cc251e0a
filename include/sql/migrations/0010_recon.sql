-- 0010 recon: the reconciliation runs, every difference row each check found, and the verdict per check.
--
-- closeout_reconcile materialises each check's differences query (include/sql/recon/<check>.sql) once into
-- recon_differences, then Great Expectations validates the rows beyond tolerance (an empty set passes).
-- The verdicts are closeout.recon_checks (contract: run_id, period, check_name, status, observed, tolerance,
-- evidence). Rows are evidence: kept, never rewritten.

CREATE TABLE closeout_data.recon_runs (
    run_id           text PRIMARY KEY,
    airflow_run_id   text,
    period           text CHECK (period IS NULL OR period ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    ledger_cutoff    timestamptz NOT NULL,
    external_cutoff  timestamptz NOT NULL,
    started_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at      timestamptz,
    status           text NOT NULL CHECK (status IN ('running', 'passed', 'failed', 'error')),
    data_docs        text
);

CREATE TABLE closeout_data.recon_differences (
    run_id            text NOT NULL REFERENCES closeout_data.recon_runs,
    check_name        text NOT NULL,
    kind              text NOT NULL,
    currency          text,
    item              text NOT NULL,
    difference_minor  bigint NOT NULL,
    hard              boolean NOT NULL
);
CREATE INDEX recon_differences_run_check ON closeout_data.recon_differences (run_id, check_name);

CREATE TABLE closeout_data.recon_checks (
    run_id      text NOT NULL REFERENCES closeout_data.recon_runs,
    period      text,
    check_name  text NOT NULL,
    suite       text NOT NULL,
    status      text NOT NULL CHECK (status IN ('passed', 'failed', 'not_applicable', 'error')),
    observed    jsonb NOT NULL DEFAULT '{}',
    tolerance   jsonb NOT NULL DEFAULT '{}',
    evidence    jsonb NOT NULL DEFAULT '{}',
    checked_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (run_id, check_name)
);

CREATE VIEW closeout.recon_runs AS
SELECT run_id, airflow_run_id, period, ledger_cutoff, external_cutoff, started_at, finished_at, status, data_docs
FROM closeout_data.recon_runs;

-- Public contract (DESIGN.md): run_id, period, check_name, status, observed, tolerance, evidence.
CREATE VIEW closeout.recon_checks AS
SELECT run_id, period, check_name, status, observed, tolerance, evidence, suite, checked_at
FROM closeout_data.recon_checks;

CREATE VIEW closeout.recon_differences AS
SELECT run_id, check_name, kind, currency, item, difference_minor, hard FROM closeout_data.recon_differences;
