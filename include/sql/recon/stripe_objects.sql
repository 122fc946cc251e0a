-- Issue 13 item 5, stripe_objects: what Stripe's own lists hold (closeout_data.stripe_invoice_snapshots,
-- credit_notes, refunds, disputes as closeout.payments.cash read them from the list endpoints) against what
-- closeout knows, both ways. One row per difference; empty when they agree. Signed: Stripe minus closeout.
--
-- Invoices (invariant 3 read from Stripe itself):
--   invoice_unknown            Stripe lists a live invoice (open, paid, uncollectible) no closeout invoice is: made
--                              in the Dashboard, or by anything but closeout. Item: the Stripe invoice id.
--   invoice_duplicate          a live Stripe invoice whose metadata names a closeout invoice that has ANOTHER Stripe
--                              invoice (a second publication of one draft).
--   invoice_missing_in_stripe  closeout published an invoice (finalized before the list's last complete pass) that
--                              Stripe does not list. Item: closeout invoice id and its Stripe id.
--   invoice_currency / invoice_total / invoice_void_in_stripe / invoice_void_in_closeout /
--   invoice_paid_beyond_stripe  the same invoice differs. Status and amount paid are judged only on a snapshot
--                              taken after closeout last changed the invoice (Stripe moves first; closeout follows
--                              through events, so an older snapshot says nothing). A total that differs on an
--                              invoice `invoices_to_stripe` reports in this same run (its publication record or an
--                              open payment exception from Stripe's events) is left to that check: one cause, one
--                              check. Nothing goes unreported: left out only while invoices_to_stripe fails on it.
-- Credit notes (issued), refunds (not failed or canceled), disputes (any status):
--   <object>_unknown           not linked to any closeout invoice (a refund or dispute: nor to the charge of a
--                              payment closeout recorded): closeout cannot book it, claw back payouts on it, or
--                              tell finance about it. Item: the Stripe id.
--   <object>_currency          linked, in another currency than its invoice.
--
-- Scope: Stripe's side up to where each list was last completely read (closeout_data.stripe_listed_until, capped
-- at the external cut-off); closeout's published invoices finalized by then. With a period: closeout's invoices
-- of billing periods starting in it (as invoices_to_stripe) and the Stripe invoices linked to them; unlinked
-- Stripe invoices, and credit notes, refunds and disputes, created before its end: one closeout cannot place
-- stays reported by this check in every later close (as the other cash checks judge everything to the period's
-- end), and stripe_balance, which leaves their money to this check, never reports it instead.
WITH listed AS (
    SELECT s.stream, least({external_cutoff}::timestamptz, closeout_data.stripe_listed_until(s.stream)) AS until
    FROM (VALUES ('invoices'), ('credit_notes'), ('refunds'), ('disputes')) s(stream)
), reported AS (
    SELECT DISTINCT d.item FROM closeout_data.recon_differences d
    WHERE d.run_id = {run_id} AND d.check_name = 'invoices_to_stripe'
), ours AS (
    SELECT i.invoice_id, i.stripe_invoice_id, upper(i.currency) AS currency, i.total_minor, i.amount_paid_minor,
           i.status, i.updated_at, p.finalized_at,
           ({period_start}::date IS NULL
            OR (i.period_start >= {period_start}::date AND i.period_start < {period_end}::date)) AS in_period
    FROM closeout_data.invoices i
    LEFT JOIN closeout_data.stripe_publications p ON p.invoice_id = i.invoice_id AND p.state = 'finalized'
    WHERE i.stripe_invoice_id IS NOT NULL AND i.status IN ('open', 'paid', 'uncollectible', 'void')
), theirs AS (
    SELECT s.stripe_invoice_id, s.invoice_id AS named_invoice_id, upper(s.currency) AS currency, s.status,
           s.total_minor, s.amount_paid_minor, s.created_at, s.seen_at
    FROM closeout_data.stripe_invoice_snapshots s
    JOIN listed w ON w.stream = 'invoices'
    WHERE s.created_at <= w.until
)
SELECT CASE WHEN m.invoice_id IS NULL THEN 'invoice_unknown' ELSE 'invoice_duplicate' END AS kind,
       t.currency, t.stripe_invoice_id AS item, coalesce(t.total_minor, 0) AS difference_minor, true AS hard
FROM theirs t
LEFT JOIN closeout_data.invoices m ON m.invoice_id = t.named_invoice_id
WHERE t.status IN ('open', 'paid', 'uncollectible')
  AND NOT EXISTS (SELECT 1 FROM closeout_data.invoices o WHERE o.stripe_invoice_id = t.stripe_invoice_id)
  AND (m.invoice_id IS NULL OR m.stripe_invoice_id IS NOT NULL)  -- a publication in flight is the publisher's
  AND CASE WHEN m.invoice_id IS NULL
           THEN {period_end}::date IS NULL OR t.created_at < {period_end}::date
           ELSE {period_start}::date IS NULL
                OR (m.period_start >= {period_start}::date AND m.period_start < {period_end}::date) END
UNION ALL
SELECT 'invoice_missing_in_stripe', o.currency, o.invoice_id || ' (' || o.stripe_invoice_id || ')', -o.total_minor, true
FROM ours o
JOIN listed w ON w.stream = 'invoices'
WHERE o.in_period AND o.finalized_at <= w.until
  AND NOT EXISTS (SELECT 1 FROM closeout_data.stripe_invoice_snapshots s WHERE s.stripe_invoice_id = o.stripe_invoice_id)
UNION ALL
SELECT x.kind, o.currency, o.invoice_id || ' (' || o.stripe_invoice_id || ')', x.difference_minor, x.hard
FROM ours o
JOIN theirs t ON t.stripe_invoice_id = o.stripe_invoice_id
CROSS JOIN LATERAL (VALUES
    ('invoice_currency', t.currency <> o.currency, coalesce(t.total_minor, 0) - o.total_minor, true),
    ('invoice_total', t.currency = o.currency AND t.status <> 'draft' AND t.total_minor IS DISTINCT FROM o.total_minor
                      AND NOT EXISTS (SELECT 1 FROM reported r WHERE r.item IN (o.invoice_id, o.stripe_invoice_id)),
        coalesce(t.total_minor, 0) - o.total_minor, false),
    ('invoice_void_in_stripe', t.status = 'void' AND o.status <> 'void' AND t.seen_at >= o.updated_at,
        o.amount_paid_minor - o.total_minor, true),
    ('invoice_void_in_closeout', o.status = 'void' AND t.status IN ('open', 'paid', 'uncollectible')
                                 AND t.seen_at >= o.updated_at, coalesce(t.total_minor, 0), true),
    ('invoice_paid_beyond_stripe', o.amount_paid_minor > coalesce(t.amount_paid_minor, 0)
                                   AND t.seen_at >= o.updated_at,
        coalesce(t.amount_paid_minor, 0) - o.amount_paid_minor, true)
) AS x (kind, differs, difference_minor, hard)
WHERE o.in_period AND x.differs
UNION ALL
SELECT CASE WHEN i.invoice_id IS NULL THEN 'credit_note_unknown' ELSE 'credit_note_currency' END,
       upper(c.currency), c.credit_note_id, c.amount_minor, true
FROM closeout_data.credit_notes c
JOIN listed w ON w.stream = 'credit_notes'
LEFT JOIN LATERAL (
    SELECT i.invoice_id, i.currency FROM closeout_data.invoices i
    WHERE i.invoice_id = c.invoice_id OR i.stripe_invoice_id = c.stripe_invoice_id
    ORDER BY (i.invoice_id = c.invoice_id) IS TRUE DESC LIMIT 1
) i ON true
WHERE c.status = 'issued' AND c.created_at <= w.until
  AND ({period_end}::date IS NULL OR c.created_at < {period_end}::date)
  AND (i.invoice_id IS NULL OR upper(i.currency) <> upper(c.currency))
UNION ALL
SELECT CASE WHEN i.invoice_id IS NULL THEN 'refund_unknown' ELSE 'refund_currency' END,
       upper(r.currency), r.refund_id, r.amount_minor, true
FROM closeout_data.refunds r
JOIN listed w ON w.stream = 'refunds'
LEFT JOIN LATERAL (
    SELECT i.invoice_id, i.currency FROM closeout_data.invoices i
    WHERE i.invoice_id = r.invoice_id
       OR i.invoice_id IN (SELECT p.invoice_id FROM closeout_data.invoice_payments p
                           WHERE p.kind = 'payment' AND p.charge_id = r.charge_id)
    ORDER BY (i.invoice_id = r.invoice_id) IS TRUE DESC LIMIT 1
) i ON true
WHERE r.status NOT IN ('failed', 'canceled') AND r.created_at <= w.until
  AND ({period_end}::date IS NULL OR r.created_at < {period_end}::date)
  AND (i.invoice_id IS NULL OR upper(i.currency) <> upper(r.currency))
UNION ALL
SELECT CASE WHEN i.invoice_id IS NULL THEN 'dispute_unknown' ELSE 'dispute_currency' END,
       upper(d.currency), d.dispute_id, d.amount_minor, true
FROM closeout_data.disputes d
JOIN listed w ON w.stream = 'disputes'
LEFT JOIN LATERAL (
    SELECT i.invoice_id, i.currency FROM closeout_data.invoices i
    WHERE i.invoice_id = d.invoice_id
       OR i.invoice_id IN (SELECT p.invoice_id FROM closeout_data.invoice_payments p
                           WHERE p.kind = 'payment' AND p.charge_id = d.charge_id)
    ORDER BY (i.invoice_id = d.invoice_id) IS TRUE DESC LIMIT 1
) i ON true
WHERE d.created_at <= w.until
  AND ({period_end}::date IS NULL OR d.created_at < {period_end}::date)
  AND (i.invoice_id IS NULL OR upper(i.currency) <> upper(d.currency))
