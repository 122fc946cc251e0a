SELECT close_run_id, period, airflow_run_id, dry_run, params, status, steps, report_url, started_at
FROM closeout_data.close_runs
WHERE airflow_run_id = %(airflow_run_id)s
