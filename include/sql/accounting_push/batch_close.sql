-- A batch answered (or failed as a whole, or its objects looked up after the key's lifetime): no longer pending.
UPDATE closeout_data.accounting_push_batches
   SET state = %(state)s, answered_at = clock_timestamp(), error = %(error)s
 WHERE batch_id = %(batch_id)s AND state = 'pending'
