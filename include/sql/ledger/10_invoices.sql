-- Invoice finalisation: an invoice Stripe finalised is owed by its client. Debit receivable (the client on the
-- journal), credit revenue, for the invoice's total as closeout computed it (invariant 3 ties it to Stripe's).
-- Tax (migration 0042, docs/invoice-tax.md): a taxed invoice's tax (closeout.invoices.tax_minor, the sum of its
-- lines' taxes, equal to Stripe's total_taxes) is credited to tax_payable; revenue gets the total less tax.
-- With an inclusive rate each line's amount holds its tax, so the expense lines' part below is taken net of
-- their tax (what the client pays for the expense, before tax). An untaxed invoice's journal is as before.
-- Posted once per invoice (kind 'invoice', source = invoice_id), also for invoices voided since: the void
-- step then reverses it, so the ledger shows both.
-- Expense lines (migrations 0035, 0038; docs/expense-books.md): with expense_revenue_mode 'pass_through' (the
-- default, include/ledger/expenses.yaml) the lines that bill expenses credit reimbursable_expenses with the
-- expenses' own cost (cost_minor), clearing the cost booked when they were approved (65_*), and
-- expense_markup_revenue with the rest of those lines (markup and its rounding); revenue gets the other lines.
-- Mode 'revenue': the whole total is revenue, as before. A part that nets negative is a debit; zero parts are
-- left out, so an invoice without expense lines keeps its two lines.
WITH src AS (
    SELECT i.invoice_id, i.client_key, i.currency, i.total_minor, i.tax_minor, p.finalized_at,
           coalesce(x.billed_minor, 0) AS expense_minor, coalesce(x.cost_minor, 0) AS expense_cost_minor
    FROM closeout_data.invoices i
    JOIN closeout_data.stripe_publications p ON p.invoice_id = i.invoice_id AND p.state = 'finalized'
    LEFT JOIN LATERAL (
        SELECT sum(l.amount_minor - CASE WHEN i.tax_inclusive
                                         THEN closeout_data.line_tax_minor(l.amount_minor, i.tax_rate_percent, true)
                                         ELSE 0 END)::bigint AS billed_minor,
               sum(e.cost_minor)::bigint AS cost_minor
        FROM closeout.invoice_lines l
        JOIN (SELECT e.line_no, sum(e.cost_minor) AS cost_minor FROM closeout.invoice_line_expenses e
              WHERE e.invoice_id = i.invoice_id GROUP BY e.line_no) e ON e.line_no = l.line_no
        WHERE l.invoice_id = i.invoice_id AND %(expense_revenue_mode)s = 'pass_through'
    ) x ON true
    WHERE i.status IN ('open', 'paid', 'uncollectible', 'void') AND i.total_minor > 0
      AND NOT EXISTS (SELECT 1 FROM closeout_data.journals j WHERE j.kind = 'invoice' AND j.source_ref = i.invoice_id)
), posted AS (
    INSERT INTO closeout_data.journals (journal_id, kind, source_ref, currency, client_key, invoice_id, occurred_at,
                                        ledger_run_id, description)
    SELECT closeout_data.journal_id('invoice', s.invoice_id), 'invoice', s.invoice_id, s.currency, s.client_key,
           s.invoice_id, coalesce(s.finalized_at, clock_timestamp()), %(run)s,
           'Invoice ' || s.invoice_id || ' finalised in Stripe'
    FROM src s
    ON CONFLICT DO NOTHING
    RETURNING journal_id, invoice_id, currency
)
INSERT INTO closeout_data.journal_lines (journal_id, line_no, currency, role, account_code, debit_minor, credit_minor)
SELECT p.journal_id, l.line_no, p.currency, l.role, l.account_code, greatest(-l.credit, 0), greatest(l.credit, 0)
FROM posted p
JOIN src s ON s.invoice_id = p.invoice_id
CROSS JOIN LATERAL (VALUES  -- credit: signed, negative for a debit
    (1, 'receivable', %(receivable)s, -s.total_minor),
    (2, 'revenue', %(revenue)s, s.total_minor - s.tax_minor - s.expense_minor),
    (3, 'reimbursable_expenses', %(reimbursable_expenses)s, s.expense_cost_minor),
    (4, 'expense_markup_revenue', %(expense_markup_revenue)s, s.expense_minor - s.expense_cost_minor),
    (5, 'tax_payable', %(tax_payable)s, s.tax_minor)
) AS l (line_no, role, account_code, credit)
WHERE l.credit <> 0;
