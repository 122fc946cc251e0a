-- What Stripe lists as invoices (list reads only). Moves forward by status, then amount paid; seen_at is the
-- last time a listing showed the invoice.
INSERT INTO closeout_data.stripe_invoice_snapshots AS t (
    stripe_invoice_id, customer_id, number, currency, status, total_minor, amount_due_minor, amount_paid_minor,
    amount_remaining_minor, pre_payment_credit_notes_amount_minor, post_payment_credit_notes_amount_minor,
    created_at, metadata, seen_at, starting_balance_minor, ending_balance_minor)
SELECT DISTINCT ON (s.stripe_invoice_id)
       s.stripe_invoice_id, s.customer_id, s.number, s.currency, s.status, s.total_minor, s.amount_due_minor,
       s.amount_paid_minor, s.amount_remaining_minor, s.pre_payment_credit_notes_amount_minor,
       s.post_payment_credit_notes_amount_minor, to_timestamp(s.created), s.metadata, s.observed_at,
       s.starting_balance_minor, s.ending_balance_minor
FROM pg_temp.cash_stage_invoice s
ORDER BY s.stripe_invoice_id, closeout_data.stripe_status_rank('invoice', s.status) DESC,
         s.amount_paid_minor DESC NULLS LAST, s.observed_at DESC
ON CONFLICT (stripe_invoice_id) DO UPDATE SET
    customer_id = excluded.customer_id,
    number = coalesce(excluded.number, t.number),
    status = excluded.status,
    total_minor = excluded.total_minor,
    amount_due_minor = excluded.amount_due_minor,
    amount_paid_minor = excluded.amount_paid_minor,
    amount_remaining_minor = excluded.amount_remaining_minor,
    pre_payment_credit_notes_amount_minor = excluded.pre_payment_credit_notes_amount_minor,
    post_payment_credit_notes_amount_minor = excluded.post_payment_credit_notes_amount_minor,
    metadata = excluded.metadata,
    starting_balance_minor = excluded.starting_balance_minor,
    ending_balance_minor = excluded.ending_balance_minor,
    seen_at = excluded.seen_at,
    updated_at = CASE WHEN (excluded.status, excluded.total_minor, excluded.amount_paid_minor,
                            excluded.amount_remaining_minor, excluded.metadata, excluded.number)
                           IS DISTINCT FROM (t.status, t.total_minor, t.amount_paid_minor, t.amount_remaining_minor,
                                             t.metadata, t.number)
                      THEN clock_timestamp() ELSE t.updated_at END
WHERE (closeout_data.stripe_status_rank('invoice', excluded.status), coalesce(excluded.amount_paid_minor, 0),
       excluded.seen_at)
      > (closeout_data.stripe_status_rank('invoice', t.status), coalesce(t.amount_paid_minor, 0), t.seen_at)
