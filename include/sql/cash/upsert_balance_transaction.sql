-- Balance transactions are immutable in Stripe but for two facts: pending -> available, and the automatic
-- payout that carried them (known once the payout's transactions are listed). Neither ever moves back.
INSERT INTO closeout_data.stripe_balance_transactions AS t (
    balance_transaction_id, type, reporting_category, currency, amount_minor, fee_minor, net_minor, fee_details,
    exchange_rate, source_id, source_type, payout_id, status, description, created_at, available_on, charge_id,
    observed_at)
SELECT DISTINCT ON (s.balance_transaction_id)
       s.balance_transaction_id, s.type, s.reporting_category, s.currency, s.amount_minor, s.fee_minor, s.net_minor,
       s.fee_details, s.exchange_rate, s.source_id,
       CASE WHEN s.source_id LIKE 'ch\_%' OR s.source_id LIKE 'py\_%' THEN 'charge'
            WHEN s.source_id LIKE 're\_%' OR s.source_id LIKE 'pyr\_%' THEN 'refund'
            WHEN s.source_id LIKE 'dp\_%' OR s.source_id LIKE 'du\_%' THEN 'dispute'
            WHEN s.source_id LIKE 'po\_%' THEN 'payout'
            WHEN s.source_id LIKE 'trr\_%' THEN 'transfer_reversal'
            WHEN s.source_id LIKE 'tr\_%' THEN 'transfer'
            WHEN s.source_id LIKE 'fee\_%' THEN 'application_fee'
            ELSE s.type END,
       s.payout_id, s.status, s.description, to_timestamp(s.created), to_timestamp(s.available_on),
       CASE WHEN s.source_id LIKE 'ch\_%' OR s.source_id LIKE 'py\_%' THEN s.source_id END,
       s.observed_at
FROM pg_temp.cash_stage_balance_transaction s
ORDER BY s.balance_transaction_id, closeout_data.stripe_status_rank('balance_transaction', s.status) DESC,
         (s.payout_id IS NOT NULL) DESC, s.observed_at DESC
ON CONFLICT (balance_transaction_id) DO UPDATE SET
    status = CASE WHEN closeout_data.stripe_status_rank('balance_transaction', excluded.status)
                       > closeout_data.stripe_status_rank('balance_transaction', t.status)
                  THEN excluded.status ELSE t.status END,
    observed_at = CASE WHEN closeout_data.stripe_status_rank('balance_transaction', excluded.status)
                            > closeout_data.stripe_status_rank('balance_transaction', t.status)
                       THEN excluded.observed_at ELSE t.observed_at END,
    payout_id = coalesce(excluded.payout_id, t.payout_id),
    updated_at = clock_timestamp()
WHERE closeout_data.stripe_status_rank('balance_transaction', excluded.status)
          > closeout_data.stripe_status_rank('balance_transaction', t.status)
   OR (excluded.payout_id IS NOT NULL AND excluded.payout_id IS DISTINCT FROM t.payout_id)
