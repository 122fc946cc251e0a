-- Currency conversion: a charge, refund, refund failure, dispute or dispute reinstatement presented in one
-- currency (the invoice's) and settled by Stripe in another (the balance transaction's currency differs from
-- its presentment_currency). The journal booking it (payment, refund, refund_failure, dispute,
-- dispute_reinstatement) moved cash_clearing in the presentment currency; this one moves it to the settlement
-- currency through fx_clearing (kind 'fx_conversion', source = balance_transaction_id; the journal's currency is
-- the settlement currency, and it is the one kind with lines in two currencies, each balanced on its own):
--   money in (amount > 0):  presentment  debit fx_clearing,   credit cash_clearing  (the presentment amount)
--                           settlement   debit cash_clearing, credit fx_clearing    (the transaction's amount)
--   money out (amount < 0): the same lines with debit and credit swapped.
-- So cash_clearing in a presentment-only currency returns to zero and per settlement currency holds what Stripe
-- holds. fx_clearing keeps, per charge, the presentment amount against what it was settled at; once the
-- presentment side nets to zero (refunded or lost in full) 87_fx_realised.sql closes the settlement side to
-- fx_gain_loss. Posted once the journal booking the presentment side exists, so both enter the books together.
WITH txn AS (
    SELECT t.balance_transaction_id, upper(t.currency) AS currency, upper(t.presentment_currency) AS presentment,
           t.amount_minor, sign(t.amount_minor)::bigint * abs(t.presentment_amount_minor) AS presentment_amount,
           t.created_at, t.reporting_category, t.source_id, t.exchange_rate,
           coalesce(t.charge_id, CASE WHEN t.source_type = 'charge' THEN t.source_id END) AS charge_id,
           t.invoice_id,
           CASE t.reporting_category WHEN 'charge' THEN 'payment' WHEN 'refund' THEN 'refund'
                WHEN 'refund_failure' THEN 'refund_failure' WHEN 'dispute' THEN 'dispute'
                WHEN 'dispute_reversal' THEN 'dispute_reinstatement' END AS booked_by
    FROM closeout_data.stripe_balance_transactions t
    WHERE t.presentment_currency IS NOT NULL AND upper(t.presentment_currency) <> upper(t.currency)
      AND t.presentment_amount_minor IS NOT NULL AND t.presentment_amount_minor <> 0 AND t.amount_minor <> 0
      AND t.reporting_category IN ('charge', 'refund', 'refund_failure', 'dispute', 'dispute_reversal')
      AND NOT EXISTS (SELECT 1 FROM closeout_data.journals j
                      WHERE j.kind = 'fx_conversion' AND j.source_ref = t.balance_transaction_id)
), src AS (
    SELECT x.*, b.invoice_id AS booked_invoice_id, b.client_key
    FROM txn x
    CROSS JOIN LATERAL (
        SELECT p.invoice_id, i.client_key
        FROM closeout_data.invoice_payments p
        JOIN closeout_data.invoices i ON i.invoice_id = p.invoice_id
        JOIN closeout_data.journals pj ON pj.kind = 'payment' AND pj.source_ref = p.payment_ref
        WHERE x.booked_by = 'payment' AND p.kind = 'payment' AND p.charge_id = x.charge_id
        UNION ALL
        SELECT j.invoice_id, j.client_key
        FROM closeout_data.journals j
        WHERE x.booked_by <> 'payment' AND j.kind = x.booked_by AND j.source_ref = x.source_id
        LIMIT 1
    ) b
), posted AS (
    INSERT INTO closeout_data.journals (journal_id, kind, source_ref, currency, client_key, invoice_id, occurred_at,
                                        ledger_run_id, description, charge_id)
    SELECT closeout_data.journal_id('fx_conversion', s.balance_transaction_id), 'fx_conversion',
           s.balance_transaction_id, s.currency, s.client_key, s.booked_invoice_id, s.created_at, %(run)s,
           'Conversion of ' || s.reporting_category || ' ' || coalesce(s.source_id, s.balance_transaction_id)
               || ': ' || abs(s.presentment_amount) || ' ' || s.presentment || ' settled as ' || abs(s.amount_minor)
               || ' ' || s.currency || coalesce(' (rate ' || s.exchange_rate || ')', '')
               || ' (minor units)',
           s.charge_id
    FROM src s
    ON CONFLICT DO NOTHING
    RETURNING journal_id, source_ref
)
INSERT INTO closeout_data.journal_lines (journal_id, line_no, currency, role, account_code, debit_minor, credit_minor)
SELECT p.journal_id, l.line_no, l.currency, l.role, l.account_code,
       CASE WHEN s.amount_minor > 0 THEN l.debit_minor ELSE l.credit_minor END,
       CASE WHEN s.amount_minor > 0 THEN l.credit_minor ELSE l.debit_minor END
FROM posted p
JOIN src s ON s.balance_transaction_id = p.source_ref
CROSS JOIN LATERAL (VALUES
    (1, s.presentment, 'fx_clearing', %(fx_clearing)s, abs(s.presentment_amount), 0::bigint),
    (2, s.presentment, 'cash_clearing', %(cash_clearing)s, 0::bigint, abs(s.presentment_amount)),
    (3, s.currency, 'cash_clearing', %(cash_clearing)s, abs(s.amount_minor), 0::bigint),
    (4, s.currency, 'fx_clearing', %(fx_clearing)s, 0::bigint, abs(s.amount_minor))
) AS l (line_no, currency, role, account_code, debit_minor, credit_minor);
