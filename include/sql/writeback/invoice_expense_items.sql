-- The expense versions the given invoices bill in one tracker (closeout.invoice_line_expenses, DESIGN.md columns);
-- cost and markup apart, because Harvest's import bills an expense at cost and the markup needs its own line.
SELECT x.invoice_id, 'expense' AS item_kind, x.source_id, x.version, x.amount_minor, x.cost_minor, x.markup_minor,
       v.project_source_id, v.client_source_id, v.spent_date, v.billed_in_source, v.source_invoice_ref
FROM closeout.invoice_line_expenses x
JOIN closeout_data.expense_versions v
  ON v.source = x.source AND v.source_id = x.source_id AND v.version = x.version
WHERE x.invoice_id = ANY(%(invoice_ids)s) AND x.source = %(source)s
ORDER BY x.invoice_id, x.source_id
