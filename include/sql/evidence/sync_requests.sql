-- The API calls behind the pack (closeout.sync_requests): every tracker request of the sync runs that saw the
-- billed entries' versions, and every Stripe call that created or changed the pack's invoices, their customers
-- and the payouts on them, with the idempotency keys.
WITH runs AS (
    SELECT DISTINCT v.sync_run_id
    FROM closeout.invoice_line_entries e
    JOIN closeout.time_entry_versions v ON v.source = e.source AND v.source_id = e.source_id
    WHERE e.invoice_id = ANY(%(invoice_ids)s::text[])
), customer_keys AS (
    SELECT o.idempotency_key
    FROM closeout_data.stripe_outbox o
    WHERE o.operation = 'customer.create'
      AND o.client_key IN (SELECT client_key FROM closeout.invoices WHERE invoice_id = ANY(%(invoice_ids)s::text[]))
)
SELECT q.record_kind, q.system, q.sync_run_id, q.payment_run_id, q.seq, q.phase, q.method, q.path, q.status,
       q.outcome, q.records, q.requests, q.started_at, q.finished_at, q.idempotency_key, q.object_id, q.invoice_id
FROM closeout.sync_requests q
WHERE (q.record_kind = 'tracker_request' AND q.sync_run_id IN (SELECT sync_run_id FROM runs))
   OR (q.record_kind IN ('stripe_outbox', 'payout_transfer') AND q.invoice_id = ANY(%(invoice_ids)s::text[]))
   OR (q.record_kind = 'stripe_outbox' AND q.idempotency_key IN (SELECT idempotency_key FROM customer_keys))
ORDER BY q.record_kind, q.sync_run_id, q.seq, q.started_at, q.idempotency_key;
