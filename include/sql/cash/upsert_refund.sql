-- A refund moves forward by status: requires_action -> pending -> succeeded, and may still fail or be canceled.
INSERT INTO closeout_data.refunds AS t (
    refund_id, charge_id, payment_intent_id, currency, amount_minor, status, reason, failure_reason,
    balance_transaction_id, failure_balance_transaction_id, metadata, created_at, observed_at)
SELECT DISTINCT ON (s.refund_id)
       s.refund_id, s.charge_id, s.payment_intent_id, s.currency, s.amount_minor, s.status, s.reason, s.failure_reason,
       s.balance_transaction_id, s.failure_balance_transaction_id, s.metadata, to_timestamp(s.created), s.observed_at
FROM pg_temp.cash_stage_refund s
ORDER BY s.refund_id, closeout_data.stripe_status_rank('refund', s.status) DESC, s.observed_at DESC
ON CONFLICT (refund_id) DO UPDATE SET
    charge_id = coalesce(excluded.charge_id, t.charge_id),
    payment_intent_id = coalesce(excluded.payment_intent_id, t.payment_intent_id),
    amount_minor = excluded.amount_minor,
    status = excluded.status,
    reason = excluded.reason,
    failure_reason = coalesce(excluded.failure_reason, t.failure_reason),
    balance_transaction_id = coalesce(excluded.balance_transaction_id, t.balance_transaction_id),
    failure_balance_transaction_id = coalesce(excluded.failure_balance_transaction_id,
                                              t.failure_balance_transaction_id),
    metadata = excluded.metadata,
    observed_at = excluded.observed_at,
    updated_at = clock_timestamp()
WHERE (closeout_data.stripe_status_rank('refund', excluded.status), excluded.observed_at)
      > (closeout_data.stripe_status_rank('refund', t.status), t.observed_at)
  AND (excluded.status, excluded.amount_minor, excluded.reason, excluded.failure_reason,
       excluded.balance_transaction_id, excluded.failure_balance_transaction_id, excluded.metadata)
      IS DISTINCT FROM (t.status, t.amount_minor, t.reason, t.failure_reason, t.balance_transaction_id,
                        t.failure_balance_transaction_id, t.metadata)
