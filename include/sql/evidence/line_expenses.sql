-- Which expense version each line bills (closeout.invoice_line_expenses): the expense's own cost, the markup on it
-- and what the line bills for it, with the version's tracker facts (date, category, units and unit price, receipt)
-- and the sync run that saw it (its calls are in sync_requests).
SELECT e.invoice_id, e.line_no, e.kind, e.source, e.source_id, e.version, e.cost_minor, e.markup_percent,
       e.markup_minor, e.amount_minor, v.currency, v.spent_date, v.category, v.units, v.unit_price, v.total_cost,
       v.amount_minor AS version_amount_minor, v.billable, v.approved, v.billed_in_source, v.receipt_url,
       v.change, v.deleted_at, v.sync_run_id, v.seen_at
FROM closeout.invoice_line_expenses e
JOIN closeout.expense_versions v ON v.source = e.source AND v.source_id = e.source_id AND v.version = e.version
WHERE e.invoice_id = ANY(%(invoice_ids)s::text[])
ORDER BY e.invoice_id, e.line_no, e.source, e.source_id, e.version;
