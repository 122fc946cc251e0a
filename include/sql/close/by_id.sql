SELECT close_run_id, period, airflow_run_id, dry_run, params, status, steps, report_url, started_at
FROM closeout_data.close_runs
WHERE close_run_id = %(close_run_id)s
