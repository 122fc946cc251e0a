-- How many invoices the period's files carry (the same filter as invoice_lines.sql).
SELECT count(*)
FROM closeout.invoices i
WHERE i.status IN ('open', 'paid', 'uncollectible')
  AND i.stripe_number IS NOT NULL
  AND i.period_start >= %(start)s AND i.period_start < %(end)s
