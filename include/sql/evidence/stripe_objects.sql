-- Every Stripe object of the pack's invoices: customer, invoice, payments (charges), refunds, credit notes and
-- disputes, with amounts in minor units of their currency.
WITH inv AS (
    SELECT i.invoice_id, i.client_key, i.currency, i.total_minor, i.status, i.stripe_invoice_id
    FROM closeout.invoices i WHERE i.invoice_id = ANY(%(invoice_ids)s::text[])
)
SELECT inv.invoice_id, 'customer' AS object_type, c.stripe_customer_id AS object_id, NULL::text AS currency,
       NULL::bigint AS amount_minor, c.found_by AS status
FROM inv JOIN closeout_data.stripe_customers c ON c.client_key = inv.client_key
UNION ALL
SELECT inv.invoice_id, 'invoice', inv.stripe_invoice_id, inv.currency, inv.total_minor, inv.status
FROM inv WHERE inv.stripe_invoice_id IS NOT NULL
UNION ALL
SELECT p.invoice_id, 'payment:' || p.kind, coalesce(p.charge_id, p.stripe_object_id, p.payment_ref), p.currency,
       p.amount_minor, p.event_id
FROM closeout.invoice_payments p WHERE p.invoice_id = ANY(%(invoice_ids)s::text[])
UNION ALL
SELECT r.invoice_id, 'refund', r.refund_id, r.currency, r.amount_minor, r.status
FROM closeout.refunds r WHERE r.invoice_id = ANY(%(invoice_ids)s::text[])
UNION ALL
SELECT n.invoice_id, 'credit_note', n.credit_note_id, n.currency, n.amount_minor, n.status
FROM closeout.credit_notes n WHERE n.invoice_id = ANY(%(invoice_ids)s::text[])
UNION ALL
SELECT d.invoice_id, 'dispute', d.dispute_id, d.currency, d.amount_minor, d.status
FROM closeout.disputes d WHERE d.invoice_id = ANY(%(invoice_ids)s::text[])
ORDER BY 1, 2, 3;
