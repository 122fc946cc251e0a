-- Invariant 6, the transfer half: each payout item maps to exactly one external transfer. A transfer id or an
-- idempotency key shared by two items, or an item marked paid without its transfer id, is a difference row.
SELECT 'shared_external_id' AS kind, min(p.currency) AS currency, p.external_id AS item,
       sum(p.amount_minor)::bigint AS difference_minor, true AS hard
FROM closeout.payout_items p WHERE p.external_id IS NOT NULL
GROUP BY p.external_id HAVING count(*) > 1
UNION ALL
SELECT 'shared_idempotency_key', min(p.currency), p.idempotency_key, sum(p.amount_minor)::bigint, true
FROM closeout.payout_items p WHERE p.idempotency_key IS NOT NULL
GROUP BY p.idempotency_key HAVING count(*) > 1
UNION ALL
SELECT 'paid_without_transfer', p.currency, p.payout_id::text, p.amount_minor, true
FROM closeout.payout_items p
WHERE p.status IN ('paid', 'sent', 'succeeded', 'completed', 'transferred') AND p.external_id IS NULL
