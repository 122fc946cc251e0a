UPDATE closeout_data.close_runs
SET status = %(status)s, message = %(message)s, report_url = %(report_url)s, finished_at = clock_timestamp(),
    error = NULL
WHERE close_run_id = %(close_run_id)s
