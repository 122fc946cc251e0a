-- Close report: the batches holding payout items of the period's invoices.
SELECT b.batch_id, b.status, b.item_count, b.pending, b.transferred, b.stopped,
       coalesce(b.approved_by, '') AS approved_by
FROM closeout.payout_batches b
WHERE b.batch_id IN (
    SELECT p.batch_id FROM closeout.payout_items p
    JOIN closeout.invoices i ON i.invoice_id = p.invoice_id
    WHERE i.period_start BETWEEN %(period_start)s AND %(period_end)s)
ORDER BY b.batch_id;
