-- The invoices of one accounting period: every invoice whose billing period starts in the month.
SELECT invoice_id
FROM closeout.invoices
WHERE period_start >= %(start)s::date AND period_start < %(end)s::date
ORDER BY invoice_id;
