-- Invariant 6, the work half (when closeout.payout_items carries invoice_id): a payout item only for work on a
-- paid invoice.
SELECT 'unpaid_invoice' AS kind, p.currency, p.payout_id::text || ':' || coalesce(p.invoice_id, '?') AS item,
       p.amount_minor AS difference_minor, true AS hard
FROM closeout.payout_items p
LEFT JOIN closeout.invoices i ON i.invoice_id = p.invoice_id
WHERE i.status IS DISTINCT FROM 'paid'
