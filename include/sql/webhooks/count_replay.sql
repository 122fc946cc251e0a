-- A replay of the latest event of an object (same content, any delivery id): counted, nothing stored.
UPDATE closeout_data.webhook_inbox
SET redeliveries = redeliveries + 1, last_redelivered_at = clock_timestamp()
WHERE inbox_id = %(inbox_id)s
