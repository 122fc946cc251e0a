-- Open (or, for a retried first task of the same Airflow run, reopen) the close run of one Airflow run.
-- Violates close_runs_one_running when another close is running: the caller names it in the error.
INSERT INTO closeout_data.close_runs (period, airflow_run_id, dry_run, params, status)
VALUES (%(period)s, %(airflow_run_id)s, %(dry_run)s, %(params)s, 'running')
ON CONFLICT (airflow_run_id) DO UPDATE
    SET status = 'running', error = NULL, finished_at = NULL, params = excluded.params
RETURNING close_run_id, period, airflow_run_id, dry_run, params, status, steps, report_url, started_at
