-- Clawbacks: per payout item (planned before, or planned in this run: payout_new) and per cause that takes
-- money back from its invoice and has no clawback on that item yet, what the cause takes from the item.
-- An item's entitlement on a reduction R of an invoice of total T is floor(amount x max(T - R, 0) / T): the
-- payee keeps the share of the cost the customer still pays for, rounded down. The causes already clawed back
-- (and not reversed) count first; new causes follow in the order Stripe created them, each clawing back the
-- entitlement it removes, so the clawbacks of an item add up to its amount less its entitlement. A cause that
-- removes nothing after rounding records nothing (and is looked at again next time). Only work paid out is
-- clawed back: items transferred or settled by netting, and the items planned in this run (their clawbacks are
-- netted from their own transfers); an item still pending (its approval was rejected, its release failed) is
-- looked at once it is transferred, and one Stripe refused and stopped paid nothing out. One clawback per item
-- and cause, ever: the id follows from item, cause and kind.
WITH items AS (
    SELECT i.payout_id, i.payee_key, i.invoice_id, i.currency, i.amount_minor
    FROM closeout_data.payout_items i
    WHERE i.status IN ('transferred', 'netted')
      AND EXISTS (SELECT 1 FROM payout_causes c WHERE c.invoice_id = i.invoice_id AND c.effect = 'reduces')
    UNION ALL
    SELECT n.payout_id, n.payee_key, n.invoice_id, n.currency, n.amount_minor
    FROM payout_new n
), counted AS (
    SELECT a.payout_id, sum(a.cause_amount_minor) AS reduced_minor
    FROM closeout_data.payout_adjustments a
    WHERE a.kind = 'clawback'
      AND NOT EXISTS (SELECT 1 FROM closeout_data.payout_adjustments r WHERE r.reverses_adjustment_id = a.adjustment_id)
    GROUP BY a.payout_id
), fresh AS (
    SELECT it.payout_id, it.payee_key, it.invoice_id, it.currency, it.amount_minor, c.cause_kind, c.cause_id,
           c.amount_minor AS cause_amount_minor, inv.total_minor, inv.currency AS invoice_currency,
           coalesce(k.reduced_minor, 0)
               + sum(c.amount_minor) OVER (PARTITION BY it.payout_id ORDER BY c.created_at, c.cause_kind, c.cause_id
                                           ROWS UNBOUNDED PRECEDING) AS reduced_after
    FROM items it
    JOIN payout_causes c ON c.invoice_id = it.invoice_id AND c.effect = 'reduces'
    JOIN closeout_data.invoices inv ON inv.invoice_id = it.invoice_id AND inv.total_minor > 0
    LEFT JOIN counted k ON k.payout_id = it.payout_id
    WHERE NOT EXISTS (SELECT 1 FROM closeout_data.payout_adjustments a
                      WHERE a.payout_id = it.payout_id AND a.cause_kind = c.cause_kind AND a.cause_id = c.cause_id
                        AND a.kind = 'clawback')
), priced AS (
    SELECT f.*,
           floor(f.amount_minor::numeric * greatest(f.total_minor - (f.reduced_after - f.cause_amount_minor), 0)
                 / f.total_minor)::bigint
           - floor(f.amount_minor::numeric * greatest(f.total_minor - f.reduced_after, 0) / f.total_minor)::bigint
               AS clawed_minor
    FROM fresh f
)
INSERT INTO closeout_data.payout_adjustments (adjustment_id, payout_id, payee_key, invoice_id, currency,
    amount_minor, kind, reason, cause_kind, cause_id, cause_amount_minor, invoice_total_minor, source_ref,
    description, planned_by)
SELECT 'pa_' || left(encode(sha256(convert_to(p.payout_id || '|' || p.cause_kind || '|' || p.cause_id || '|clawback',
                                              'UTF8')), 'hex'), 24),
       p.payout_id, p.payee_key, p.invoice_id, p.currency, -p.clawed_minor, 'clawback',
       CASE p.cause_kind WHEN 'dispute' THEN 'dispute_lost' ELSE p.cause_kind END,
       p.cause_kind, p.cause_id, p.cause_amount_minor, p.total_minor, p.cause_id || '/' || p.payout_id,
       'Clawback of ' || round(p.clawed_minor::numeric / (10::numeric ^ pc.exponent), pc.exponent)::text || ' '
           || p.currency || ' from ' || p.payee_key || ' (payout ' || p.payout_id || '): '
           || CASE p.cause_kind WHEN 'dispute' THEN 'lost dispute' ELSE replace(p.cause_kind, '_', ' ') END || ' '
           || p.cause_id || ' took back '
           || round(p.cause_amount_minor::numeric / (10::numeric ^ ic.exponent), ic.exponent)::text || ' of '
           || round(p.total_minor::numeric / (10::numeric ^ ic.exponent), ic.exponent)::text || ' '
           || p.invoice_currency || ' on invoice ' || p.invoice_id,
       %(planned_by)s
FROM priced p
JOIN closeout_data.currencies pc ON pc.code = p.currency
JOIN closeout_data.currencies ic ON ic.code = p.invoice_currency
WHERE p.clawed_minor > 0
ORDER BY p.payout_id, p.reduced_after
ON CONFLICT DO NOTHING
