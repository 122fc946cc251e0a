-- The entry versions the given invoices bill in one tracker (current rows of invoice_line_entries), with the
-- tracker's ids of the project and client as captured in that version.
SELECT e.invoice_id, 'time' AS item_kind, e.source_id, e.entry_version AS version, e.amount_minor,
       v.project_source_id, v.client_source_id, v.spent_date, v.billed_in_source, v.source_invoice_ref
FROM closeout_data.invoice_line_entries e
JOIN closeout_data.time_entry_versions v
  ON v.source = e.source AND v.source_id = e.source_id AND v.version = e.entry_version
WHERE e.invoice_id = ANY(%(invoice_ids)s) AND e.valid_to IS NULL AND e.source = %(source)s
ORDER BY e.invoice_id, e.source_id
