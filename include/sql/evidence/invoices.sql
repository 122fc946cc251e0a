-- The invoices of a pack, with how they reached Stripe (publication) and what Stripe says was paid.
SELECT i.invoice_id, i.client_key, i.client_name, i.period_start, i.period_end, i.currency, i.status, i.version,
       i.total_minor, i.amount_paid_minor, i.line_count, i.entry_count, i.approved_version, i.approved_by,
       i.approved_at, i.frozen_version, i.frozen_at, p.stripe_customer_id, i.stripe_invoice_id, i.stripe_number,
       p.stripe_total_minor, p.state AS publication_state, p.finalized_at, i.hosted_invoice_url,
       i.created_at, i.updated_at
FROM closeout.invoices i
LEFT JOIN closeout.stripe_publications p ON p.invoice_id = i.invoice_id
WHERE i.invoice_id = ANY(%(invoice_ids)s::text[])
ORDER BY i.invoice_id;
