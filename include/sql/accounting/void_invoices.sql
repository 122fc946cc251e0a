-- Published invoices of the period that Stripe voided: not exported (an import would create a receivable
-- that does not exist), listed in the manifest so finance voids them where an earlier export put them.
SELECT i.invoice_id, i.stripe_number AS invoice_no, i.currency, i.total_minor
FROM closeout.invoices i
WHERE i.status = 'void' AND i.stripe_number IS NOT NULL
  AND i.period_start >= %(start)s AND i.period_start < %(end)s
ORDER BY i.stripe_number COLLATE "C"
