-- Close report: adjustment and credit lines on the period's invoices (edits or deletions of entries
-- or expenses already invoiced, billed in this period), with the invoice and line they correct. Expense lines
-- billed for the first time are expenses, not adjustments (report_clients.sql).
SELECT l.invoice_id, i.client_key, i.currency, cur.exponent, i.status, l.line_no, l.kind, l.description,
       l.quantity, l.amount_minor, coalesce(l.adjusts_invoice_id, '') AS adjusts_invoice_id, l.adjusts_line_no
FROM closeout.invoice_lines l
JOIN closeout.invoices i ON i.invoice_id = l.invoice_id
JOIN closeout_data.currencies cur ON cur.code = i.currency
WHERE i.period_start BETWEEN %(period_start)s AND %(period_end)s AND i.status <> 'void' AND l.kind IN ('adjustment', 'credit')
ORDER BY i.currency, i.client_key, l.invoice_id, l.line_no;
