-- Stripe payouts to the bank (closeout_data.stripe_payouts), step 1: when Stripe creates a payout it takes the
-- amount from the balance at once (the payout's balance transaction), days before the bank has it. Debit
-- bank_clearing (payouts in transit), credit cash_clearing, for the payout's amount in its currency (kind
-- 'stripe_payout', source = payout_id), posted once the payout's balance transaction is recorded, so the
-- ledger's Stripe balance follows Stripe's at every moment. Arrival at the bank: 91_stripe_payout_arrivals.sql;
-- a failed or canceled payout: 92_stripe_payout_failures.sql. A payout's own fee (instant payouts) is its
-- transaction's fee, booked by 85_fees.sql.
WITH src AS (
    SELECT p.payout_id, upper(p.currency) AS currency, p.amount_minor, p.automatic, t.created_at
    FROM closeout_data.stripe_payouts p
    JOIN closeout_data.stripe_balance_transactions t ON t.balance_transaction_id = p.balance_transaction_id
    WHERE p.amount_minor > 0
      AND NOT EXISTS (SELECT 1 FROM closeout_data.journals j
                      WHERE j.kind = 'stripe_payout' AND j.source_ref = p.payout_id)
), posted AS (
    INSERT INTO closeout_data.journals (journal_id, kind, source_ref, currency, occurred_at, ledger_run_id,
                                        description)
    SELECT closeout_data.journal_id('stripe_payout', s.payout_id), 'stripe_payout', s.payout_id, s.currency,
           s.created_at, %(run)s,
           CASE WHEN s.automatic THEN 'Automatic' ELSE 'Manual' END || ' Stripe payout ' || s.payout_id
               || ' to the bank: in transit'
    FROM src s
    ON CONFLICT DO NOTHING
    RETURNING journal_id, source_ref, currency
)
INSERT INTO closeout_data.journal_lines (journal_id, line_no, currency, role, account_code, debit_minor, credit_minor)
SELECT p.journal_id, l.line_no, p.currency, l.role, l.account_code, l.debit_minor, l.credit_minor
FROM posted p
JOIN src s ON s.payout_id = p.source_ref
CROSS JOIN LATERAL (VALUES
    (1, 'bank_clearing', %(bank_clearing)s, s.amount_minor, 0::bigint),
    (2, 'cash_clearing', %(cash_clearing)s, 0::bigint, s.amount_minor)
) AS l (line_no, role, account_code, debit_minor, credit_minor);
