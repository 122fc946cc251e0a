-- A payout moves forward by status (pending -> in_transit -> paid, and paid may still fail), then by its
-- reconciliation (in_progress -> completed).
INSERT INTO closeout_data.stripe_payouts AS t (
    payout_id, currency, amount_minor, status, automatic, arrival_date, created_at, balance_transaction_id,
    failure_balance_transaction_id, failure_code, failure_message, method, type, reconciliation_status, observed_at)
SELECT DISTINCT ON (s.payout_id)
       s.payout_id, s.currency, s.amount_minor, s.status, s.automatic,
       (to_timestamp(s.arrival_date) AT TIME ZONE 'UTC')::date, to_timestamp(s.created), s.balance_transaction_id,
       s.failure_balance_transaction_id, s.failure_code, s.failure_message, s.method, s.type, s.reconciliation_status,
       s.observed_at
FROM pg_temp.cash_stage_payout s
ORDER BY s.payout_id, closeout_data.stripe_status_rank('payout', s.status) DESC,
         closeout_data.stripe_status_rank('payout_reconciliation', s.reconciliation_status) DESC, s.observed_at DESC
ON CONFLICT (payout_id) DO UPDATE SET
    amount_minor = excluded.amount_minor,
    status = excluded.status,
    arrival_date = excluded.arrival_date,
    balance_transaction_id = coalesce(excluded.balance_transaction_id, t.balance_transaction_id),
    failure_balance_transaction_id = coalesce(excluded.failure_balance_transaction_id,
                                              t.failure_balance_transaction_id),
    failure_code = coalesce(excluded.failure_code, t.failure_code),
    failure_message = coalesce(excluded.failure_message, t.failure_message),
    method = excluded.method,
    type = excluded.type,
    reconciliation_status = excluded.reconciliation_status,
    observed_at = excluded.observed_at,
    updated_at = clock_timestamp()
WHERE (closeout_data.stripe_status_rank('payout', excluded.status),
       closeout_data.stripe_status_rank('payout_reconciliation', excluded.reconciliation_status), excluded.observed_at)
      > (closeout_data.stripe_status_rank('payout', t.status),
         closeout_data.stripe_status_rank('payout_reconciliation', t.reconciliation_status), t.observed_at)
  AND (excluded.status, excluded.reconciliation_status, excluded.amount_minor, excluded.arrival_date,
       excluded.balance_transaction_id, excluded.failure_balance_transaction_id, excluded.failure_code)
      IS DISTINCT FROM (t.status, t.reconciliation_status, t.amount_minor, t.arrival_date, t.balance_transaction_id,
                        t.failure_balance_transaction_id, t.failure_code)
