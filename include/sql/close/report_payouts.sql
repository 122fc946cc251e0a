-- Close report: payout items for work on the period's invoices, by currency and status, with the batches
-- they are in. Status: transferred (released), pending, stopped (refused by Stripe for good).
SELECT p.currency, cur.exponent, p.status, count(*) AS items, sum(p.amount_minor)::bigint AS amount_minor,
       sum(p.hours) AS hours, array_agg(DISTINCT p.batch_id ORDER BY p.batch_id) AS batches
FROM closeout.payout_items p
JOIN closeout.invoices i ON i.invoice_id = p.invoice_id
JOIN closeout_data.currencies cur ON cur.code = p.currency
WHERE i.period_start BETWEEN %(period_start)s AND %(period_end)s
GROUP BY p.currency, cur.exponent, p.status
ORDER BY p.currency, p.status;
