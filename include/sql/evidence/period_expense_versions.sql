-- Every version of every expense spent in the period, as the trackers' syncs saw them (closeout.expense_versions:
-- tracker ids, amount and currency, units and unit price, billable, approved, receipt metadata, the sync run).
-- Expenses reach invoices with issue 16; until then this is the period's record of what was spent and captured.
SELECT v.source, v.source_id, v.version, v.sync_run_id, v.seen_at, v.change, v.client_key, v.project_key,
       v.user_key, v.spent_date, v.category, v.billable, v.approved, v.currency, v.amount_minor, v.unit_name,
       v.units, v.unit_price, v.total_cost, v.billed_in_source, v.source_invoice_ref, v.is_locked,
       v.receipt_file_name, v.notes, v.deleted_at
FROM closeout.expense_versions v
WHERE v.spent_date >= %(start)s AND v.spent_date < %(end)s
ORDER BY v.source, v.source_id, v.version;
