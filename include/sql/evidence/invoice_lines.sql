-- The current lines of the pack's invoices (contract view closeout.invoice_lines).
SELECT l.invoice_id, l.line_no, l.kind, l.description, l.quantity, l.unit_rate, l.amount_minor, l.rounding_minor,
       l.entry_count, l.project_key, l.task_key, l.user_key, l.spent_date, l.adjusts_invoice_id, l.adjusts_line_no,
       l.version AS invoice_version, l.line_key
FROM closeout.invoice_lines l
WHERE l.invoice_id = ANY(%(invoice_ids)s::text[])
ORDER BY l.invoice_id, l.line_no;
