-- A payment Stripe confirmed (closeout_data.invoice_payments, kind 'payment', from invoice_payment.paid
-- events): debit the Stripe balance (cash_clearing) or, for a payment made outside Stripe ("paid out of band":
-- no charge), the bank (cash); credit the client's receivable. Only once the invoice's finalisation is posted,
-- so a payment never settles a receivable the ledger has not recorded. The amount is in the invoice's currency
-- (the charge's presentment currency); a charge Stripe settles in another currency is moved to it by its
-- fx_conversion journal (86_fx_conversions.sql). The journal names its charge (journals.charge_id).
WITH src AS (
    SELECT x.payment_ref, x.invoice_id, x.amount_minor, x.currency, x.occurred_at, x.charge_id, i.client_key
    FROM closeout_data.invoice_payments x
    JOIN closeout_data.invoices i ON i.invoice_id = x.invoice_id
    WHERE x.kind = 'payment' AND x.amount_minor > 0
      AND EXISTS (SELECT 1 FROM closeout_data.journals f WHERE f.kind = 'invoice' AND f.source_ref = x.invoice_id)
      AND NOT EXISTS (SELECT 1 FROM closeout_data.journals j WHERE j.kind = 'payment' AND j.source_ref = x.payment_ref)
), posted AS (
    INSERT INTO closeout_data.journals (journal_id, kind, source_ref, currency, client_key, invoice_id, occurred_at,
                                        ledger_run_id, description, charge_id)
    SELECT closeout_data.journal_id('payment', s.payment_ref), 'payment', s.payment_ref, s.currency, s.client_key,
           s.invoice_id, s.occurred_at, %(run)s,
           'Payment ' || s.payment_ref || ' of invoice ' || s.invoice_id
               || CASE WHEN s.charge_id IS NULL THEN ' (outside Stripe)' ELSE '' END,
           s.charge_id
    FROM src s
    ON CONFLICT DO NOTHING
    RETURNING journal_id, source_ref, currency
)
INSERT INTO closeout_data.journal_lines (journal_id, line_no, currency, role, account_code, debit_minor, credit_minor)
SELECT p.journal_id, l.line_no, p.currency, l.role, l.account_code, l.debit_minor, l.credit_minor
FROM posted p
JOIN src s ON s.payment_ref = p.source_ref
CROSS JOIN LATERAL (VALUES
    (1, CASE WHEN s.charge_id IS NULL THEN 'cash' ELSE 'cash_clearing' END,
        CASE WHEN s.charge_id IS NULL THEN %(cash)s ELSE %(cash_clearing)s END, s.amount_minor, 0::bigint),
    (2, 'receivable', %(receivable)s, 0::bigint, s.amount_minor)
) AS l (line_no, role, account_code, debit_minor, credit_minor);
