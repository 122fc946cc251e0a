-- Invariant 6, the work half (when closeout.payout_items carries invoice_id): a payout item only for work on a
-- paid invoice, and only once: a second item for the same payee and invoice (in any currency; a replayed or
-- buggy plan, or the one-item-per-work guard bypassed) pays the same work twice, even when each item has its own
-- key and its own transfer, so the transfer half sees nothing wrong. Every item after the first planned is a row,
-- for its full amount.
SELECT 'unpaid_invoice' AS kind, p.currency, p.payout_id::text || ':' || coalesce(p.invoice_id, '?') AS item,
       p.amount_minor AS difference_minor, true AS hard
FROM closeout.payout_items p
LEFT JOIN closeout.invoices i ON i.invoice_id = p.invoice_id
WHERE i.status IS DISTINCT FROM 'paid'
UNION ALL
SELECT 'duplicate_work', d.currency, d.payout_id::text || ':' || d.invoice_id, d.amount_minor, true
FROM (SELECT p.payout_id, p.invoice_id, p.currency, p.amount_minor,
             row_number() OVER (PARTITION BY p.payee_key, p.invoice_id ORDER BY p.planned_at, p.payout_id) AS nth
      FROM closeout.payout_items p WHERE p.invoice_id IS NOT NULL) d
WHERE d.nth > 1
