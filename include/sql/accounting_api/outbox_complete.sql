-- The outcome of a recorded write: succeeded with the vendor's id, failed with its (masked) refusal, or still
-- pending after a transport failure (the next attempt sends the same key and gets the original answer).
UPDATE closeout_data.accounting_api_outbox
SET status = %(status)s,
    http_status = %(http_status)s,
    external_id = coalesce(%(external_id)s, external_id),
    sync_token = coalesce(%(sync_token)s, sync_token),
    replayed = replayed OR %(replayed)s,
    error = %(error)s,
    completed_at = CASE WHEN %(status)s = 'pending' THEN NULL ELSE clock_timestamp() END
WHERE outbox_id = %(outbox_id)s
