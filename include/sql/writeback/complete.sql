-- The outcome of one write (done, failed or gap), with what the tracker answered (a summary, no secrets).
UPDATE closeout_data.tracker_writebacks
SET status = %(status)s, external_id = coalesce(%(external_id)s, external_id), response = %(response)s,
    reason = %(reason)s, method = coalesce(%(method)s, method), completed_at = clock_timestamp(),
    updated_at = clock_timestamp()
WHERE writeback_id = %(writeback_id)s
