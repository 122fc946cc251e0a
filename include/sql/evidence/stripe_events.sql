-- Every Stripe event closeout stored about the pack's invoices or their objects, and what processing made of it.
WITH inv AS (
    SELECT invoice_id, stripe_invoice_id FROM closeout.invoices WHERE invoice_id = ANY(%(invoice_ids)s::text[])
), objects AS (
    SELECT stripe_invoice_id AS object_id FROM inv WHERE stripe_invoice_id IS NOT NULL
    UNION SELECT charge_id FROM closeout.invoice_payments
          WHERE invoice_id = ANY(%(invoice_ids)s::text[]) AND charge_id IS NOT NULL
    UNION SELECT stripe_object_id FROM closeout.invoice_payments
          WHERE invoice_id = ANY(%(invoice_ids)s::text[]) AND stripe_object_id IS NOT NULL
)
SELECT e.event_id, e.event_type, e.created_at, e.object_type, e.object_id, e.invoice_id, e.received_via,
       e.received_at, e.processed_at, e.outcome, e.reason, e.attempts
FROM closeout.stripe_events e
WHERE e.invoice_id = ANY(%(invoice_ids)s::text[]) OR e.object_id IN (SELECT object_id FROM objects)
ORDER BY e.created_at, e.event_id;
