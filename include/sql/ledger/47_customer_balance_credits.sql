-- A credit closeout itself put on a client's Stripe customer balance: a draft whose corrections netted it
-- negative once its period was over (closeout_data.corrections, kind 'customer_balance', issued: Stripe made the
-- customer balance transaction, corrections.stripe_object_id). One journal per correction (kind
-- 'customer_balance_credit', source = correction_id), in the credit's currency, booked as a credit note's
-- credit_amount is (45_credit_notes.sql): debit credit_notes (contra revenue: time billed on earlier invoices was
-- corrected down), credit customer_credit (owed to the customer until Stripe applies it to a later invoice,
-- 48_customer_credit_applied.sql). Not a credit note: Stripe lists no credit note for it, so nothing else books
-- it. No invoice and no receivable: the draft it came from bills nothing.
-- Tax (docs/invoice-tax.md): a customer balance transaction carries no tax, so a credit off a taxed draft puts
-- net + tax on the balance (corrections.credit_total_minor; an inclusive rate's tax is inside the net) and the tax
-- part (corrections.tax_minor, worked out per line by closeout before the call) is booked here explicitly: debit
-- tax_payable with it, credit_notes with the rest, credit customer_credit with all of it.
WITH src AS (
    SELECT c.correction_id, c.client_key, c.currency, coalesce(c.credit_total_minor, c.amount_minor) AS amount_minor,
           c.tax_minor, c.stripe_object_id, c.from_invoice_id,
           coalesce(c.issued_at, c.updated_at) AS occurred_at
    FROM closeout_data.corrections c
    WHERE c.kind = 'customer_balance' AND c.state = 'issued' AND c.amount_minor > 0
      AND NOT EXISTS (SELECT 1 FROM closeout_data.journals j
                      WHERE j.kind = 'customer_balance_credit' AND j.source_ref = c.correction_id)
), posted AS (
    INSERT INTO closeout_data.journals (journal_id, kind, source_ref, currency, client_key, invoice_id, occurred_at,
                                        ledger_run_id, description)
    SELECT closeout_data.journal_id('customer_balance_credit', s.correction_id), 'customer_balance_credit',
           s.correction_id, s.currency, s.client_key, NULL, s.occurred_at, %(run)s,
           'Customer balance credit ' || s.stripe_object_id || ' (correction ' || s.correction_id
               || ': corrections on draft ' || s.from_invoice_id || ' exceed what it bills)'
    FROM src s
    ON CONFLICT DO NOTHING
    RETURNING journal_id, source_ref, currency
)
INSERT INTO closeout_data.journal_lines (journal_id, line_no, currency, role, account_code, debit_minor, credit_minor)
SELECT p.journal_id, l.line_no, p.currency, l.role, l.account_code, l.debit_minor, l.credit_minor
FROM posted p
JOIN src s ON s.correction_id = p.source_ref
CROSS JOIN LATERAL (VALUES
    (1, 'credit_notes', %(credit_notes)s, s.amount_minor - s.tax_minor, 0::bigint),
    (2, 'customer_credit', %(customer_credit)s, 0::bigint, s.amount_minor),
    (3, 'tax_payable', %(tax_payable)s, s.tax_minor, 0::bigint)
) AS l (line_no, role, account_code, debit_minor, credit_minor)
WHERE l.debit_minor + l.credit_minor > 0;
