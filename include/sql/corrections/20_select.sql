-- Which draft rows become corrections. Parameters: locked_through (NULL: nothing locked), as_of (today).
--
-- The drafting bills a change to an entry an issued invoice billed as adjustment ('adj|') or credit
-- ('credit|') rows on the client's next draft, one line per entry and rate. Here, per entry and draft:
-- * the rows net to a decrease and one issued (open, paid, uncollectible) invoice of the same client and
--   currency still bills the entry at least that much: the rows become a credit note against that invoice
--   (the latest such invoice); else, for an entry with one row there, the decrease is split across the
--   issued invoices that bill it, newest first; otherwise it stays on the draft;
-- * a draft whose period is over and that still nets negative: its remaining adjustment and credit rows
--   become one credit on the client's Stripe customer balance, so it never sits unpublished.
-- Time rows never move, and neither does anything on a draft that can no longer change (a locked period).
--
-- Expenses (issue 16 item 2): an expense's 'xadj|' or 'xcredit|' row (one row per line, an expense and a
-- markup) follows the same path, item = 'expense': a decrease becomes a credit note against the latest issued
-- invoice still billing the expense at least that much (its expense rows less credit notes against it), else
-- stays on the draft (an expense decrease is not split across invoices); a draft whose period is over and
-- that nets negative credits its remaining expense rows to the customer balance with the time rows. Time
-- entries and expenses may share a source id: every grouping below keys on item as well.

-- Adjustment and credit lines bill one entry each: their current row, found through the entry index (the
-- line key names the entry; the join on invoice and line key keeps the match exact).
CREATE TEMP TABLE correction_rows ON COMMIT DROP AS
SELECT d.invoice_id AS draft_id, d.client_key, d.currency, d.period_end, d.total_minor AS draft_total_minor,
       e.line_key, e.source, e.source_id, e.entry_version, e.quantity, e.unit_rate, e.amount_minor, e.valid_from,
       l.amount_minor AS line_amount_minor, 'entry'::text AS item, NULL::bigint AS cost_minor,
       NULL::numeric AS markup_percent
FROM closeout_data.invoices d
JOIN closeout_data.invoice_lines l
  ON l.invoice_id = d.invoice_id AND l.valid_to IS NULL AND l.kind <> 'time' AND l.entry_count = 1
CROSS JOIN LATERAL (SELECT split_part(l.line_key, '|', 2) AS entry) k
JOIN closeout_data.invoice_line_entries e
  ON e.source_id = substr(k.entry, strpos(k.entry, ':') + 1) AND e.source = split_part(k.entry, ':', 1)
 AND e.valid_to IS NULL AND e.invoice_id = l.invoice_id AND e.line_key = l.line_key
WHERE d.status = 'draft' AND NOT coalesce(d.period_end <= %(locked_through)s::date, false);

-- Expense adjustment and credit lines ('x' keys, one expense row each): their current row.
INSERT INTO correction_rows
SELECT d.invoice_id, d.client_key, d.currency, d.period_end, d.total_minor, e.line_key, e.source, e.source_id,
       e.expense_version, NULL, NULL, e.amount_minor, e.valid_from, l.amount_minor, 'expense', e.cost_minor,
       e.markup_percent
FROM closeout_data.invoices d
JOIN closeout_data.invoice_lines l
  ON l.invoice_id = d.invoice_id AND l.valid_to IS NULL AND l.kind IN ('adjustment', 'credit') AND l.entry_count = 1
 AND l.line_key LIKE 'x%%'
JOIN closeout_data.invoice_line_expenses e
  ON e.invoice_id = l.invoice_id AND e.line_key = l.line_key AND e.valid_to IS NULL
WHERE d.status = 'draft' AND NOT coalesce(d.period_end <= %(locked_through)s::date, false);

CREATE TEMP TABLE correction_nets ON COMMIT DROP AS
SELECT r.draft_id, r.client_key, r.currency, r.item, r.source, r.source_id, sum(r.amount_minor) AS net_minor
FROM correction_rows r
GROUP BY r.draft_id, r.client_key, r.currency, r.item, r.source, r.source_id
HAVING sum(r.amount_minor) < 0;

-- What each issued invoice still bills for those entries (expenses): its line entries (expense rows) less the
-- credit notes against it.
CREATE TEMP TABLE correction_billed ON COMMIT DROP AS
SELECT n.draft_id, n.item, n.source, n.source_id, n.net_minor, i.invoice_id, i.frozen_at,
       sum(x.amount_minor) AS billed_minor
FROM correction_nets n
CROSS JOIN LATERAL (
    SELECT e.invoice_id, e.amount_minor FROM closeout_data.invoice_line_entries e
    WHERE n.item = 'entry' AND e.source = n.source AND e.source_id = n.source_id AND e.valid_to IS NULL
    UNION ALL
    SELECT k.invoice_id, c.amount_minor
    FROM closeout_data.correction_entries c
    JOIN closeout_data.corrections k ON k.correction_id = c.correction_id
    WHERE n.item = 'entry' AND c.source = n.source AND c.source_id = n.source_id AND k.kind = 'credit_note'
      AND k.state <> 'void'
    UNION ALL
    SELECT e.invoice_id, e.amount_minor FROM closeout_data.invoice_line_expenses e
    WHERE n.item = 'expense' AND e.source = n.source AND e.source_id = n.source_id AND e.valid_to IS NULL
    UNION ALL
    SELECT k.invoice_id, c.amount_minor
    FROM closeout_data.correction_expenses c
    JOIN closeout_data.corrections k ON k.correction_id = c.correction_id
    WHERE n.item = 'expense' AND c.source = n.source AND c.source_id = n.source_id AND k.kind = 'credit_note'
      AND k.state <> 'void'
) x
JOIN closeout_data.invoices i ON i.invoice_id = x.invoice_id
WHERE i.status IN ('open', 'paid', 'uncollectible') AND i.stripe_invoice_id IS NOT NULL
  AND i.client_key = n.client_key AND i.currency = n.currency
GROUP BY n.draft_id, n.item, n.source, n.source_id, n.net_minor, i.invoice_id, i.frozen_at;

CREATE TEMP TABLE correction_moves ON COMMIT DROP AS
SELECT r.draft_id, r.line_key, r.source, r.source_id, r.entry_version, r.quantity, r.unit_rate, r.amount_minor,
       r.valid_from, r.line_amount_minor, 'credit_note'::text AS kind, t.invoice_id, r.client_key, r.currency,
       NULL::text AS correction_id, r.item, r.cost_minor, r.markup_percent
FROM (
    SELECT DISTINCT ON (b.draft_id, b.item, b.source, b.source_id) b.draft_id, b.item, b.source, b.source_id,
           b.invoice_id
    FROM correction_billed b
    WHERE b.billed_minor >= -b.net_minor
    ORDER BY b.draft_id, b.item, b.source, b.source_id, b.frozen_at DESC, b.invoice_id DESC
) t
JOIN correction_rows r
  ON r.draft_id = t.draft_id AND r.item = t.item AND r.source = t.source AND r.source_id = t.source_id;

-- A decrease no single invoice covers, of an entry with one row on the draft (one rate): split across the
-- issued invoices that bill it, newest first, each credited at most what it still bills for the entry. The
-- row's quantity is split in proportion (to six decimals, the oldest part taking the remainder): the parts
-- add up to the row exactly, in amount and in quantity.
INSERT INTO correction_moves
WITH single_row AS (
    SELECT r.draft_id, r.source, r.source_id FROM correction_rows r
    WHERE r.item = 'entry'
    GROUP BY r.draft_id, r.source, r.source_id HAVING count(*) = 1
),
uncovered AS (
    SELECT b.draft_id, b.source, b.source_id FROM correction_billed b
    JOIN single_row s ON s.draft_id = b.draft_id AND s.source = b.source AND s.source_id = b.source_id
    WHERE b.item = 'entry'
    GROUP BY b.draft_id, b.source, b.source_id
    HAVING bool_and(b.billed_minor < -b.net_minor) AND sum(greatest(b.billed_minor, 0)) >= -min(b.net_minor)
),
ordered AS (
    SELECT b.*, sum(b.billed_minor) OVER (PARTITION BY b.draft_id, b.source, b.source_id
                                          ORDER BY b.frozen_at DESC, b.invoice_id DESC) AS through_minor
    FROM correction_billed b
    JOIN uncovered u ON u.draft_id = b.draft_id AND u.source = b.source AND u.source_id = b.source_id
    WHERE b.billed_minor > 0 AND b.item = 'entry'
),
parts AS (
    SELECT o.draft_id, o.source, o.source_id, o.invoice_id,
           least(o.billed_minor, -o.net_minor - (o.through_minor - o.billed_minor)) AS take_minor,
           row_number() OVER (PARTITION BY o.draft_id, o.source, o.source_id
                              ORDER BY o.frozen_at, o.invoice_id) AS from_oldest
    FROM ordered o
    WHERE o.through_minor - o.billed_minor < -o.net_minor
),
shares AS (
    SELECT p.*, r.line_key, r.entry_version, r.unit_rate, r.valid_from, r.line_amount_minor, r.client_key,
           r.currency, r.quantity AS row_quantity,
           CASE WHEN p.from_oldest = 1 THEN NULL
                ELSE round(r.quantity * p.take_minor / -r.amount_minor, 6) END AS share_quantity
    FROM parts p
    JOIN correction_rows r
      ON r.draft_id = p.draft_id AND r.source = p.source AND r.source_id = p.source_id AND r.item = 'entry'
)
SELECT s.draft_id, s.line_key, s.source, s.source_id, s.entry_version,
       coalesce(s.share_quantity,
                s.row_quantity - coalesce(sum(s.share_quantity) OVER (PARTITION BY s.draft_id, s.source, s.source_id),
                                          0)),
       s.unit_rate, -s.take_minor, s.valid_from, s.line_amount_minor, 'credit_note', s.invoice_id, s.client_key,
       s.currency, NULL, 'entry', NULL, NULL
FROM shares s;

-- Drafts whose period is over and that net negative once the credit notes have taken their rows.
INSERT INTO correction_moves
WITH remaining AS (
    SELECT r.* FROM correction_rows r
    WHERE r.period_end < %(as_of)s::date
      AND NOT EXISTS (SELECT 1 FROM correction_moves m
                      WHERE m.draft_id = r.draft_id AND m.line_key = r.line_key AND m.item = r.item
                        AND m.source = r.source AND m.source_id = r.source_id)
),
negative AS (
    SELECT r.draft_id
    FROM remaining r
    GROUP BY r.draft_id, r.draft_total_minor
    HAVING sum(r.amount_minor) < 0
       AND r.draft_total_minor - coalesce((SELECT sum(x.line_amount_minor)
                                           FROM (SELECT DISTINCT m.line_key, m.line_amount_minor
                                                 FROM correction_moves m WHERE m.draft_id = r.draft_id) x), 0) < 0
)
SELECT r.draft_id, r.line_key, r.source, r.source_id, r.entry_version, r.quantity, r.unit_rate, r.amount_minor,
       r.valid_from, r.line_amount_minor, 'customer_balance', NULL, r.client_key, r.currency, NULL, r.item,
       r.cost_minor, r.markup_percent
FROM remaining r
WHERE r.draft_id IN (SELECT draft_id FROM negative);

-- One correction per invoice credited (or client balance) and draft, numbered after those already made.
CREATE TEMP TABLE correction_new ON COMMIT DROP AS
SELECT g.kind, g.invoice_id, g.client_key, g.currency, g.draft_id, g.amount_minor, g.seq, d.version + 1 AS from_version,
       CASE g.kind WHEN 'credit_note' THEN 'cn/' || g.invoice_id
                   ELSE 'cb/' || g.client_key || '/' || g.currency END || '/' || g.seq AS correction_id
FROM (
    SELECT m.kind, m.invoice_id, m.client_key, m.currency, m.draft_id, -sum(m.amount_minor) AS amount_minor,
           (coalesce((SELECT max(c.seq) FROM closeout_data.corrections c
                      WHERE c.kind = m.kind AND coalesce(c.invoice_id, c.client_key) = coalesce(m.invoice_id, m.client_key)
                        AND c.currency = m.currency), 0)
            + row_number() OVER (PARTITION BY m.kind, coalesce(m.invoice_id, m.client_key), m.currency
                                 ORDER BY m.draft_id))::integer AS seq
    FROM correction_moves m
    GROUP BY m.kind, m.invoice_id, m.client_key, m.currency, m.draft_id
    HAVING sum(m.amount_minor) < 0
) g
JOIN closeout_data.invoices d ON d.invoice_id = g.draft_id;

UPDATE correction_moves m SET correction_id = n.correction_id
FROM correction_new n
WHERE n.kind = m.kind AND n.draft_id = m.draft_id AND n.invoice_id IS NOT DISTINCT FROM m.invoice_id
  AND n.client_key = m.client_key AND n.currency = m.currency;

DELETE FROM correction_moves WHERE correction_id IS NULL;
