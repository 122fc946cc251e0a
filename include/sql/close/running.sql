-- A close that is running under another Airflow run (here or in another deployment).
SELECT close_run_id, period, airflow_run_id, started_at, dry_run
FROM closeout_data.close_runs
WHERE status = 'running' AND airflow_run_id <> %(airflow_run_id)s
