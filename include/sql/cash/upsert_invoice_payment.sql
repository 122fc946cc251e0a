-- Stripe's invoice payments: which PaymentIntent or charge paid which Stripe invoice (open -> paid | canceled).
INSERT INTO closeout_data.stripe_invoice_payments AS t (
    invoice_payment_id, stripe_invoice_id, payment_type, payment_intent_id, charge_id, currency, amount_paid_minor,
    status, paid_at, created_at, observed_at)
SELECT DISTINCT ON (s.invoice_payment_id)
       s.invoice_payment_id, s.stripe_invoice_id, s.payment_type, s.payment_intent_id, s.charge_id, s.currency,
       s.amount_paid_minor, s.status, to_timestamp(s.paid_at), to_timestamp(s.created), s.observed_at
FROM pg_temp.cash_stage_invoice_payment s
ORDER BY s.invoice_payment_id, closeout_data.stripe_status_rank('invoice_payment', s.status) DESC,
         s.observed_at DESC
ON CONFLICT (invoice_payment_id) DO UPDATE SET
    payment_intent_id = coalesce(excluded.payment_intent_id, t.payment_intent_id),
    charge_id = coalesce(excluded.charge_id, t.charge_id),
    amount_paid_minor = excluded.amount_paid_minor,
    status = excluded.status,
    paid_at = coalesce(excluded.paid_at, t.paid_at),
    observed_at = excluded.observed_at,
    updated_at = clock_timestamp()
WHERE (closeout_data.stripe_status_rank('invoice_payment', excluded.status), excluded.observed_at)
      > (closeout_data.stripe_status_rank('invoice_payment', t.status), t.observed_at)
  AND (excluded.status, excluded.amount_paid_minor, excluded.payment_intent_id, excluded.charge_id, excluded.paid_at)
      IS DISTINCT FROM (t.status, t.amount_paid_minor, t.payment_intent_id, t.charge_id, t.paid_at)
