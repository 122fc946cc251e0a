-- A failure of a cause: a new open cause, or one more occurrence of the open one with the same fingerprint.
INSERT INTO closeout_data.alert_causes AS c
    (fingerprint, dag_id, task_id, exception_type, normalised, message, money, first_run_id, last_run_id)
VALUES (%(fingerprint)s, %(dag_id)s, %(task_id)s, %(exception_type)s, %(normalised)s, %(message)s, %(money)s,
        %(run_id)s, %(run_id)s)
ON CONFLICT (fingerprint) WHERE resolved_at IS NULL DO UPDATE
    SET occurrences = c.occurrences + 1, last_seen_at = clock_timestamp(), last_run_id = excluded.last_run_id,
        message = excluded.message
RETURNING cause_id, occurrences
