-- Which entry version each line bills, at what quantity and rate, for how much (closeout.invoice_line_entries).
SELECT e.invoice_id, e.line_no, e.kind, e.source, e.source_id, e.version, e.quantity, e.unit_rate, e.amount_minor
FROM closeout.invoice_line_entries e
WHERE e.invoice_id = ANY(%(invoice_ids)s::text[])
ORDER BY e.invoice_id, e.line_no, e.source, e.source_id, e.version;
