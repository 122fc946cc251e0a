-- Stripe fees, from Stripe's balance transactions (never from a price list): one journal per balance
-- transaction that carries a fee (kind 'fee', source = balance_transaction_id), in its settlement currency.
-- The fee is the transaction's fee (card fees on a charge, the dispute fee on a dispute withdrawal, an instant
-- payout's fee ...) plus, for the fee-only transactions Stripe posts later (type stripe_fee, stripe_fx_fee,
-- tax_fee: billing, Radar, ...), the amount they take from the balance. Debit processor_fees (dispute_fees for
-- a dispute's transactions), credit cash_clearing; a negative fee (Stripe gave a fee back) posts the other way.
-- So per transaction the ledger's Stripe balance moves by -fee, and with the journal booking its amount (payment,
-- refund, dispute, payout ...) by the transaction's net.
WITH src AS (
    SELECT t.balance_transaction_id, upper(t.currency) AS currency, t.created_at, t.type, t.reporting_category,
           coalesce(t.charge_id, CASE WHEN t.source_type = 'charge' THEN t.source_id END) AS charge_id,
           coalesce(t.fee_minor, 0)
               + CASE WHEN t.type IN ('stripe_fee', 'stripe_fx_fee', 'tax_fee') THEN -t.amount_minor ELSE 0 END
               AS fee,
           CASE WHEN t.reporting_category IN ('dispute', 'dispute_reversal') THEN 'dispute_fees'
                ELSE 'processor_fees' END AS role,
           i.invoice_id, i.client_key
    FROM closeout_data.stripe_balance_transactions t
    LEFT JOIN closeout_data.invoices i ON i.invoice_id = t.invoice_id
    WHERE coalesce(t.fee_minor, 0)
              + CASE WHEN t.type IN ('stripe_fee', 'stripe_fx_fee', 'tax_fee') THEN -t.amount_minor ELSE 0 END <> 0
      AND NOT EXISTS (SELECT 1 FROM closeout_data.journals j
                      WHERE j.kind = 'fee' AND j.source_ref = t.balance_transaction_id)
), posted AS (
    INSERT INTO closeout_data.journals (journal_id, kind, source_ref, currency, client_key, invoice_id, occurred_at,
                                        ledger_run_id, description, charge_id)
    SELECT closeout_data.journal_id('fee', s.balance_transaction_id), 'fee', s.balance_transaction_id, s.currency,
           s.client_key, s.invoice_id, s.created_at, %(run)s,
           CASE WHEN s.fee < 0 THEN 'Stripe fee returned on ' ELSE 'Stripe fee on ' END
               || coalesce(s.reporting_category, s.type, 'transaction') || ' ' || s.balance_transaction_id
               || coalesce(' (charge ' || s.charge_id || ')', ''),
           s.charge_id
    FROM src s
    ON CONFLICT DO NOTHING
    RETURNING journal_id, source_ref, currency
)
INSERT INTO closeout_data.journal_lines (journal_id, line_no, currency, role, account_code, debit_minor, credit_minor)
SELECT p.journal_id, l.line_no, p.currency, l.role, l.account_code, l.debit_minor, l.credit_minor
FROM posted p
JOIN src s ON s.balance_transaction_id = p.source_ref
CROSS JOIN LATERAL (
    SELECT s.role AS fee_role, CASE s.role WHEN 'dispute_fees' THEN %(dispute_fees)s ELSE %(processor_fees)s END
               AS fee_code, abs(s.fee) AS fee_abs
) f
CROSS JOIN LATERAL (VALUES
    (CASE WHEN s.fee > 0 THEN 1 ELSE 2 END, f.fee_role, f.fee_code,
        CASE WHEN s.fee > 0 THEN f.fee_abs ELSE 0 END, CASE WHEN s.fee > 0 THEN 0 ELSE f.fee_abs END),
    (CASE WHEN s.fee > 0 THEN 2 ELSE 1 END, 'cash_clearing', %(cash_clearing)s,
        CASE WHEN s.fee > 0 THEN 0 ELSE f.fee_abs END, CASE WHEN s.fee > 0 THEN f.fee_abs ELSE 0 END)
) AS l (line_no, role, account_code, debit_minor, credit_minor);
