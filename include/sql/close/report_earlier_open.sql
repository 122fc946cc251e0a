-- Close report: what earlier billing periods still owe at the close, per currency (open and publishing invoices'
-- unpaid remainder), so the page shows the receivable the period's own figures do not include.
SELECT i.currency, cur.exponent, count(*) AS invoices, count(DISTINCT i.client_key) AS clients,
       sum(i.total_minor - i.amount_paid_minor)::bigint AS outstanding_minor, min(i.period_start) AS oldest_period_start
FROM closeout.invoices i
JOIN closeout_data.currencies cur ON cur.code = i.currency
WHERE i.period_start < %(period_start)s AND i.status IN ('publishing', 'open')
GROUP BY i.currency, cur.exponent
ORDER BY i.currency;
