-- The current lines of the given invoices, as closeout.invoice_lines numbers them (what explicit line items copy).
SELECT invoice_id, line_no, kind, description, quantity, unit_rate, amount_minor, project_key
FROM closeout.invoice_lines
WHERE invoice_id = ANY(%(invoice_ids)s)
ORDER BY invoice_id, line_no
