-- Batches sent (or about to be) whose answer was never recorded: a timeout, a killed worker. Oldest first; age in
-- seconds decides between resending under the same key (the vendor replays) and looking the objects up.
SELECT batch_id, object_kind, business_ref, items, payload::text, extract(epoch FROM clock_timestamp() - created_at) AS age
FROM closeout_data.accounting_push_batches
WHERE system = %(system)s AND company_id = %(company_id)s AND state = 'pending'
ORDER BY batch_id
