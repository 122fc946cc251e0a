-- The task succeeded: its open causes are resolved, so the same failure later is a new cause and alerts again.
UPDATE closeout_data.alert_causes
SET resolved_at = clock_timestamp(), resolved_by_run = %(run_id)s
WHERE dag_id = %(dag_id)s AND task_id = %(task_id)s AND resolved_at IS NULL
