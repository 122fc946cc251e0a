-- Close report: work on the period's paid invoices that is not paid out, and why, per reason.
SELECT x.reason, count(*) AS items, sum(x.hours) AS hours, sum(x.entry_count) AS entries,
       array_agg(DISTINCT x.payee_key ORDER BY x.payee_key) AS payees
FROM closeout.payout_exceptions x
JOIN closeout.invoices i ON i.invoice_id = x.invoice_id
WHERE i.period_start BETWEEN %(period_start)s AND %(period_end)s
GROUP BY x.reason
ORDER BY x.reason;
