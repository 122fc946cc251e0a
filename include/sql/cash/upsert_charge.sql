-- A charge moves forward by status, then by being disputed (which stays true); the newer snapshot wins whole.
-- The amount refunded is not a progress measure (a failed refund gives it back); resolve.sql sets it from the
-- charge's refunds, as Stripe computes it.
INSERT INTO closeout_data.stripe_charges AS t (
    charge_id, payment_intent_id, stripe_invoice_id, customer_id, currency, amount_minor, amount_refunded_minor,
    balance_transaction_id, status, disputed, created_at, observed_at)
SELECT DISTINCT ON (s.charge_id)
       s.charge_id, s.payment_intent_id, s.stripe_invoice_id, s.customer_id, s.currency, s.amount_minor,
       s.amount_refunded_minor, s.balance_transaction_id, s.status, s.disputed, to_timestamp(s.created), s.observed_at
FROM pg_temp.cash_stage_charge s
ORDER BY s.charge_id, closeout_data.stripe_status_rank('charge', s.status) DESC, s.disputed DESC, s.observed_at DESC
ON CONFLICT (charge_id) DO UPDATE SET
    payment_intent_id = coalesce(excluded.payment_intent_id, t.payment_intent_id),
    stripe_invoice_id = coalesce(t.stripe_invoice_id, excluded.stripe_invoice_id),
    customer_id = coalesce(excluded.customer_id, t.customer_id),
    amount_minor = excluded.amount_minor,
    amount_refunded_minor = excluded.amount_refunded_minor,
    balance_transaction_id = coalesce(excluded.balance_transaction_id, t.balance_transaction_id),
    status = excluded.status,
    disputed = excluded.disputed,
    observed_at = excluded.observed_at,
    updated_at = clock_timestamp()
WHERE (closeout_data.stripe_status_rank('charge', excluded.status), excluded.disputed, excluded.observed_at)
      > (closeout_data.stripe_status_rank('charge', t.status), t.disputed, t.observed_at)
  AND (excluded.status, excluded.amount_refunded_minor, excluded.disputed, excluded.amount_minor,
       excluded.balance_transaction_id, excluded.payment_intent_id)
      IS DISTINCT FROM (t.status, t.amount_refunded_minor, t.disputed, t.amount_minor, t.balance_transaction_id,
                        t.payment_intent_id)
