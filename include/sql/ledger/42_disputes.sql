-- Disputes (chargebacks), from Stripe's dispute objects (closeout_data.disputes) and their balance
-- transactions: when Stripe withdraws the disputed amount (a balance transaction of reporting category
-- 'dispute' whose source is the dispute), debit disputes (contra revenue), credit cash_clearing, for the
-- dispute's amount in its own currency (the charge's; a foreign settlement is moved by its fx_conversion
-- journal). The dispute fee Stripe takes with the withdrawal is that transaction's fee: 85_fees.sql books it
-- to dispute_fees. Kind 'dispute', source = dispute_id (the identity journals posted from invoice_payments had
-- too, so a dispute booked before 0017 is not booked again). A won dispute is reversed by
-- 43_dispute_reinstatements.sql; a lost one stays booked. The receivable is untouched.
WITH src AS (
    SELECT d.dispute_id, d.charge_id, upper(d.currency) AS currency, d.amount_minor, d.reason, w.created_at AS occurred_at,
           b.invoice_id, b.client_key
    FROM closeout_data.disputes d
    CROSS JOIN LATERAL (
        SELECT min(t.created_at) AS created_at
        FROM closeout_data.stripe_balance_transactions t
        WHERE t.source_id = d.dispute_id AND t.reporting_category = 'dispute'
    ) w
    CROSS JOIN LATERAL (
        SELECT p.invoice_id, i.client_key
        FROM closeout_data.invoice_payments p
        JOIN closeout_data.invoices i ON i.invoice_id = p.invoice_id
        JOIN closeout_data.journals pj ON pj.kind = 'payment' AND pj.source_ref = p.payment_ref
        WHERE p.kind = 'payment' AND p.charge_id = d.charge_id
        ORDER BY p.occurred_at
        LIMIT 1
    ) b
    WHERE d.amount_minor > 0 AND w.created_at IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM closeout_data.journals j WHERE j.kind = 'dispute' AND j.source_ref = d.dispute_id)
), posted AS (
    INSERT INTO closeout_data.journals (journal_id, kind, source_ref, currency, client_key, invoice_id, occurred_at,
                                        ledger_run_id, description, charge_id)
    SELECT closeout_data.journal_id('dispute', s.dispute_id), 'dispute', s.dispute_id, s.currency, s.client_key,
           s.invoice_id, s.occurred_at, %(run)s,
           'Dispute ' || s.dispute_id || ' on charge ' || s.charge_id || ' of invoice ' || s.invoice_id
               || ': funds withdrawn' || coalesce(' (' || s.reason || ')', ''),
           s.charge_id
    FROM src s
    ON CONFLICT DO NOTHING
    RETURNING journal_id, source_ref, currency
)
INSERT INTO closeout_data.journal_lines (journal_id, line_no, currency, role, account_code, debit_minor, credit_minor)
SELECT p.journal_id, l.line_no, p.currency, l.role, l.account_code, l.debit_minor, l.credit_minor
FROM posted p
JOIN src s ON s.dispute_id = p.source_ref
CROSS JOIN LATERAL (VALUES
    (1, 'disputes', %(disputes)s, s.amount_minor, 0::bigint),
    (2, 'cash_clearing', %(cash_clearing)s, 0::bigint, s.amount_minor)
) AS l (line_no, role, account_code, debit_minor, credit_minor);
