-- Record one step's state; the run is running while a step runs and failed when one fails.
UPDATE closeout_data.close_runs
SET steps = jsonb_set(steps, ARRAY[%(step)s::text], %(state)s::jsonb, true),
    status = %(status)s,
    error = %(error)s,
    finished_at = CASE WHEN %(status)s = 'running' THEN NULL ELSE clock_timestamp() END
WHERE close_run_id = %(close_run_id)s
