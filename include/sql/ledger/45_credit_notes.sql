-- Credit notes (closeout_data.credit_notes) on an invoice the ledger has posted: one journal per credit note
-- (kind 'credit_note', source = credit_note_id), in the invoice's currency. Debit credit_notes (contra revenue)
-- with the amount credited, split by where Stripe put it:
--   pre_payment_amount   credit receivable       the invoice owes less (Stripe reduced amount_remaining)
--   refund_amount        credit refunds          the cash went back through a Stripe refund: that refund is
--                                                booked once, by 40_refunds.sql (debit refunds, credit
--                                                cash_clearing); this line moves its contra revenue to
--                                                credit_notes, so refunds keeps only refunds made without a
--                                                credit note and nothing is counted twice
--   credit_amount        credit customer_credit  the customer's Stripe balance: owed to the customer until a
--                                                later invoice uses it
--   out_of_band_amount   credit cash             returned outside Stripe (from the bank)
-- Expenses (issue 16 item 2; docs/expense-billing.md): with expense_revenue_mode 'pass_through' the expenses'
-- own cost a credit note takes back (closeout_data.correction_expenses of its correction) is debited to
-- reimbursable_expenses, reversing the invoice journal's credit there; credit_notes keeps the rest (time, markup).
-- Tax (issue 17 item 3; docs/invoice-tax.md): a credit note on a taxed invoice credits the tax of the lines it
-- lowers as well (Stripe's total_taxes, closeout_data.credit_notes.tax_minor, equal to what closeout expected,
-- else the correction was stopped as tax_mismatch): that tax is debited to tax_payable (the tax owed falls with
-- the correction) and credit_notes keeps the net. The split lines above carry the credit note's whole amount,
-- tax included, as Stripe moved it.
-- Posted whatever the credit note's status: a voided one is then reversed by 46_credit_note_voids.sql, so the
-- ledger shows both.
WITH src AS (
    SELECT c.credit_note_id, c.invoice_id, i.client_key, upper(c.currency) AS currency, c.number, c.created_at,
           coalesce(c.pre_payment_amount_minor, 0) AS pre_payment, coalesce(c.refund_amount_minor, 0) AS refund,
           coalesce(c.credit_amount_minor, 0) AS credit, coalesce(c.out_of_band_amount_minor, 0) AS out_of_band,
           coalesce(x.cost_minor, 0) AS expense_cost,
           coalesce(c.tax_minor, t.stripe_tax_minor, 0) AS tax
    FROM closeout_data.credit_notes c
    JOIN closeout_data.invoices i ON i.invoice_id = c.invoice_id
    LEFT JOIN LATERAL (
        SELECT greatest(-sum(e.cost_minor), 0)::bigint AS cost_minor
        FROM closeout_data.corrections k
        JOIN closeout_data.correction_expenses e ON e.correction_id = k.correction_id
        WHERE k.stripe_object_id = c.credit_note_id AND k.kind = 'credit_note'
          AND %(expense_revenue_mode)s = 'pass_through'
    ) x ON true
    LEFT JOIN LATERAL (
        SELECT max(k.stripe_tax_minor) AS stripe_tax_minor
        FROM closeout_data.corrections k
        WHERE k.stripe_object_id = c.credit_note_id AND k.kind = 'credit_note'
    ) t ON true
    WHERE EXISTS (SELECT 1 FROM closeout_data.journals f WHERE f.kind = 'invoice' AND f.source_ref = c.invoice_id)
      AND NOT EXISTS (SELECT 1 FROM closeout_data.journals j
                      WHERE j.kind = 'credit_note' AND j.source_ref = c.credit_note_id)
      AND coalesce(c.pre_payment_amount_minor, 0) + coalesce(c.refund_amount_minor, 0)
          + coalesce(c.credit_amount_minor, 0) + coalesce(c.out_of_band_amount_minor, 0) > 0
), posted AS (
    INSERT INTO closeout_data.journals (journal_id, kind, source_ref, currency, client_key, invoice_id, occurred_at,
                                        ledger_run_id, description)
    SELECT closeout_data.journal_id('credit_note', s.credit_note_id), 'credit_note', s.credit_note_id, s.currency,
           s.client_key, s.invoice_id, s.created_at, %(run)s,
           'Credit note ' || coalesce(s.number || ' (' || s.credit_note_id || ')', s.credit_note_id)
               || ' on invoice ' || s.invoice_id
    FROM src s
    ON CONFLICT DO NOTHING
    RETURNING journal_id, source_ref, currency
)
INSERT INTO closeout_data.journal_lines (journal_id, line_no, currency, role, account_code, debit_minor, credit_minor)
SELECT p.journal_id, row_number() OVER (PARTITION BY p.journal_id ORDER BY l.ord), p.currency, l.role, l.account_code,
       l.debit_minor, l.credit_minor
FROM posted p
JOIN src s ON s.credit_note_id = p.source_ref
CROSS JOIN LATERAL (VALUES
    (1, 'credit_notes', %(credit_notes)s,
     s.pre_payment + s.refund + s.credit + s.out_of_band - s.tax
         - least(s.expense_cost, s.pre_payment + s.refund + s.credit + s.out_of_band - s.tax), 0::bigint),
    (2, 'receivable', %(receivable)s, 0::bigint, s.pre_payment),
    (3, 'refunds', %(refunds)s, 0::bigint, s.refund),
    (4, 'customer_credit', %(customer_credit)s, 0::bigint, s.credit),
    (5, 'cash', %(cash)s, 0::bigint, s.out_of_band),
    (6, 'reimbursable_expenses', %(reimbursable_expenses)s,
     least(s.expense_cost, s.pre_payment + s.refund + s.credit + s.out_of_band - s.tax), 0::bigint),
    (7, 'tax_payable', %(tax_payable)s, s.tax, 0::bigint)
) AS l (ord, role, account_code, debit_minor, credit_minor)
WHERE l.debit_minor + l.credit_minor > 0;
