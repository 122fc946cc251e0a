-- closeout.invoices says whether an invoice's billing period is locked by a month-end close
-- (closeout.period_locks): its content can no longer change, and later edits to its entries are billed as
-- adjustments on the client's next draft. Finance asked "is this draft still moving?" of a held draft in a
-- closed month; the answer was only derivable by comparing dates against the locks.
-- Additive to the public contract: the column is appended, nothing renamed. The lock boundary is an
-- uncorrelated subquery (one InitPlan per query), not the per-row STABLE function the guards use.
CREATE OR REPLACE VIEW closeout.invoices AS
SELECT i.invoice_id, i.client_key, i.period_start, i.period_end, i.currency, i.status, i.total_minor,
       i.stripe_invoice_id, i.hosted_invoice_url, i.amount_paid_minor,
       i.version, i.line_count, i.entry_count, i.billing_period, i.payment_terms_days, i.publish_policy,
       i.approved_version, i.approved_by, i.approved_at, i.frozen_version, i.frozen_at, i.stripe_number,
       i.hosted_invoice_url_expires_at, i.created_at, i.updated_at,
       c.name AS client_name,
       coalesce(i.period_end <= (SELECT max(l.period_end) FROM closeout_data.period_locks l), false)
           AS period_locked
FROM closeout_data.invoices i
LEFT JOIN closeout_data.billing_clients c ON c.client_key = i.client_key;
