-- Close report: the period's invoices (billing period starting in the month, void ones included and
-- marked, so the page accounts for every invoice of the period), with their line split (expense lines
-- apart from adjustment and credit lines).
SELECT i.invoice_id, i.client_key, i.currency, cur.exponent, i.period_start, i.period_end, i.status,
       i.total_minor, i.amount_paid_minor, coalesce(i.stripe_number, '') AS stripe_number,
       coalesce(i.hosted_invoice_url, '') AS hosted_invoice_url,
       coalesce(sum(l.amount_minor) FILTER (WHERE l.kind = 'expense'), 0)::bigint AS expenses_minor,
       coalesce(sum(l.amount_minor) FILTER (WHERE l.kind NOT IN ('time', 'expense')), 0)::bigint AS adjustments_minor,
       count(l.line_no) AS line_count
FROM closeout.invoices i
JOIN closeout_data.currencies cur ON cur.code = i.currency
LEFT JOIN closeout.invoice_lines l ON l.invoice_id = i.invoice_id
WHERE i.period_start BETWEEN %(period_start)s AND %(period_end)s
GROUP BY i.invoice_id, i.client_key, i.currency, cur.exponent, i.period_start, i.period_end, i.status,
         i.total_minor, i.amount_paid_minor, i.stripe_number, i.hosted_invoice_url
ORDER BY i.currency, i.client_key, i.period_start, i.invoice_id;
