-- The lines of every published invoice of a billing period (period_start in [start, end)), in the order
-- the export writes them: invoice date, Stripe number, line. Void invoices are listed by void_invoices.sql.
SELECT i.invoice_id, i.stripe_number AS invoice_no, coalesce(c.name, i.client_key) AS customer, c.email,
       coalesce((p.finalized_at AT TIME ZONE 'UTC')::date, i.period_end) AS invoice_date,
       coalesce(p.due_date, coalesce((p.finalized_at AT TIME ZONE 'UTC')::date, i.period_end)
                            + i.payment_terms_days) AS due_date,
       i.payment_terms_days AS terms_days, i.currency, l.line_no, l.kind, l.description, l.quantity,
       l.unit_rate, l.amount_minor, l.spent_date AS service_date, x.cost_minor AS expense_cost_minor
FROM closeout.invoices i
JOIN closeout.invoice_lines l ON l.invoice_id = i.invoice_id
-- a line billing expenses (migration 0035): their own cost, the rest of the line is markup (docs/expense-books.md)
LEFT JOIN LATERAL (SELECT sum(e.cost_minor)::bigint AS cost_minor FROM closeout.invoice_line_expenses e
                   WHERE e.invoice_id = l.invoice_id AND e.line_no = l.line_no) x ON true
LEFT JOIN closeout.billing_clients c ON c.client_key = i.client_key
LEFT JOIN closeout.stripe_publications p ON p.invoice_id = i.invoice_id
WHERE i.status IN ('open', 'paid', 'uncollectible')
  AND i.stripe_number IS NOT NULL
  AND i.period_start >= %(start)s AND i.period_start < %(end)s
ORDER BY invoice_date, i.stripe_number COLLATE "C", l.line_no
