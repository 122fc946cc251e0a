UPDATE closeout_data.close_runs
SET status = 'failed', error = %(error)s, finished_at = clock_timestamp()
WHERE close_run_id = %(close_run_id)s AND status = 'running'
