-- The successful (not dry) close of a period, if any: re-running it changes nothing.
SELECT close_run_id, airflow_run_id, finished_at, report_url
FROM closeout_data.close_runs
WHERE period = %(period)s AND status = 'succeeded' AND NOT dry_run
ORDER BY finished_at
LIMIT 1
