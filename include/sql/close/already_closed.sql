-- A re-run of a period that closed successfully: recorded (so the view shows it), nothing else happens.
INSERT INTO closeout_data.close_runs (period, airflow_run_id, dry_run, params, status, message, report_url,
                                      finished_at)
VALUES (%(period)s, %(airflow_run_id)s, %(dry_run)s, %(params)s, 'already_closed', %(message)s, %(report_url)s,
        clock_timestamp())
ON CONFLICT (airflow_run_id) DO UPDATE SET message = excluded.message, finished_at = excluded.finished_at
