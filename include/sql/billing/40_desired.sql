-- What each dirty entry should contribute to open drafts, given everything frozen so far.
--
-- * Not yet billed on a frozen invoice, and its period not frozen: one 'time' row on the draft of its
--   client, currency and period, on the line of its grouping (and rate: a line has one rate).
-- * Already billed on a frozen (published) invoice, or its period frozen: the difference between what
--   it is worth now and what frozen invoices billed, per rate, as rows on the client's next draft
--   (the first period after its latest frozen one): 'adj' rows while the entry is still billable
--   for that client and currency (edits, rate changes, late time, re-billing after a void),
--   'credit' rows when it no longer is (deleted, unapproved, moved). An entry in exception keeps
--   what was billed: nothing is credited or added until it is fixed.
-- Frozen = any status but draft; a voided invoice bills nothing, so its entries are billed again.
-- Locked (closeout.billing.periods): a draft whose billing period ends on or before the last day of
-- the latest locked month (the locked_through parameter, NULL when nothing is locked) is fixed as a frozen invoice
-- is, and so is a period no invoice of the client covers: its entries, edited, deleted or late, are
-- billed through adjustments on the client's next draft after every frozen invoice and the lock. A
-- billing period straddling the month end (ending after it) is not locked: its time is billed on it.
-- Corrections (credit notes against issued invoices, customer balance credits: closeout.payments.corrections)
-- bill what they took over from drafts as frozen invoices do, unless voided (or their invoice is).
CREATE TEMP TABLE billing_frozen ON COMMIT DROP AS
SELECT e.source, e.source_id, e.client_key, e.currency, e.unit_rate,
       sum(e.quantity) AS quantity, sum(e.amount_minor) AS amount_minor
FROM (
    SELECT e.source, e.source_id, i.client_key, i.currency, e.unit_rate, e.quantity, e.amount_minor
    FROM billing_dirty d
    JOIN closeout_data.invoice_line_entries e
      ON e.source = d.source AND e.source_id = d.source_id AND e.valid_to IS NULL
    JOIN closeout_data.invoices i
      ON i.invoice_id = e.invoice_id AND i.status <> 'void'
     AND (i.status <> 'draft' OR i.period_end <= %(locked_through)s::date)
    UNION ALL
    SELECT c.source, c.source_id, k.client_key, k.currency, c.unit_rate, c.quantity, c.amount_minor
    FROM billing_dirty d
    JOIN closeout_data.correction_entries c ON c.source = d.source AND c.source_id = d.source_id
    JOIN closeout_data.corrections k ON k.correction_id = c.correction_id AND k.state <> 'void'
    WHERE NOT EXISTS (SELECT 1 FROM closeout_data.invoices v WHERE v.invoice_id = k.invoice_id AND v.status = 'void')
) e
GROUP BY e.source, e.source_id, e.client_key, e.currency, e.unit_rate;

CREATE TEMP TABLE billing_last_billed ON COMMIT DROP AS
SELECT DISTINCT ON (e.source, e.source_id) e.source, e.source_id, e.invoice_id, e.line_key,
       i.period_start, i.period_end
FROM billing_dirty d
JOIN closeout_data.invoice_line_entries e
  ON e.source = d.source AND e.source_id = d.source_id AND e.valid_to IS NULL
JOIN closeout_data.invoices i
  ON i.invoice_id = e.invoice_id AND (i.status <> 'draft' OR i.period_end <= %(locked_through)s::date)
-- a locked draft was fixed when its period was locked
ORDER BY e.source, e.source_id,
         coalesce(i.frozen_at, (SELECT min(pl.locked_at) FROM closeout_data.period_locks pl
                                WHERE pl.period_end >= i.period_end)) DESC,
         e.valid_from DESC, e.line_key;

-- Entries billed through adjustments: those a frozen or locked invoice billed, and those in a frozen or
-- locked period, with what the adjustment path needs of them. Collected once here, in a table of their own (with
-- statistics of its own), so the time path only has to leave them out; a run before anything is
-- frozen or locked skips the statement whole (the one-time check).
CREATE TEMP TABLE billing_adjusting ON COMMIT DROP AS
SELECT b.source, b.source_id, b.entry_version, b.state, b.client_key, b.currency, b.rate, b.quantity,
       b.amount_minor, b.spent_date, b.project_key, b.task_key, b.user_key,
       coalesce(b.period_end <= %(locked_through)s::date, false) AS period_locked
FROM billing_dirty d
-- LATERAL + LIMIT keeps this a primary-key probe per dirty entry: with a plain join the planner hashed
-- all of billing_entries for two percent of it, ten times the cost
CROSS JOIN LATERAL (
    SELECT * FROM closeout_data.billing_entries b WHERE b.source = d.source AND b.source_id = d.source_id LIMIT 1
) b
WHERE (EXISTS (SELECT 1 FROM closeout_data.invoices WHERE status <> 'draft') OR %(locked_through)s::date IS NOT NULL)
  AND ((d.source, d.source_id) IN (SELECT lb.source, lb.source_id FROM billing_last_billed lb)
       OR b.period_end <= %(locked_through)s::date
       OR EXISTS (SELECT 1 FROM closeout_data.invoices i
                  WHERE i.client_key = b.client_key AND i.currency = b.currency AND i.status <> 'draft'
                    AND i.period_start <= b.spent_date AND b.spent_date <= i.period_end));

-- Names of projects, tasks and users by contract key, for the descriptions of new lines (a key that
-- several trackers' entities map to takes the first of their names).
CREATE TEMP TABLE billing_names ON COMMIT DROP AS
SELECT t.kind, coalesce(m.key, t.source || ':' || t.source_id) AS key, min(t.name) AS name
FROM closeout_data.tracker_entities t
LEFT JOIN closeout_data.identity_map m ON m.source = t.source AND m.kind = t.kind AND m.source_id = t.source_id
WHERE t.kind IN ('project', 'task', 'user') AND t.name IS NOT NULL
GROUP BY 1, 2;

CREATE TEMP TABLE billing_desired (
    invoice_id          text NOT NULL,
    line_key            text COLLATE "C" NOT NULL,
    source              text COLLATE "C" NOT NULL,
    source_id           text COLLATE "C" NOT NULL,
    entry_version       integer NOT NULL,
    quantity            numeric NOT NULL,
    unit_rate           numeric NOT NULL,
    amount_minor        bigint NOT NULL,
    client_key          text NOT NULL,
    currency            text NOT NULL,
    period_start        date NOT NULL,
    period_end          date NOT NULL,
    billing_period      text NOT NULL,
    description         text,
    adjusts_invoice_id  text,
    adjusts_line_key    text,
    project_key         text,
    task_key            text,
    user_key            text,
    spent_date          date
) ON COMMIT DROP;

-- The time path (every entry on a first run): a billable entry nothing frozen knows about goes on
-- its period's draft, on the line of its grouping. The line's own columns are kept only where the
-- grouping makes them one value per line.
INSERT INTO billing_desired (invoice_id, line_key, source, source_id, entry_version, quantity, unit_rate,
                             amount_minor, client_key, currency, period_start, period_end, billing_period,
                             project_key, task_key, user_key, spent_date)
SELECT closeout_data.invoice_id(e.client_key, e.currency, e.period_start, e.period_end),
       'time|' || CASE e.grouping
                      WHEN 'project_task' THEN 'pt|' || e.project_key || '|' || coalesce(e.task_key, '')
                      WHEN 'project' THEN 'p|' || e.project_key
                      WHEN 'user' THEN 'u|' || e.user_key
                      WHEN 'day' THEN 'd|' || e.spent_date
                      ELSE 'e|' || e.source || ':' || e.source_id END
               || '|' || trim_scale(e.rate)::text,
       e.source, e.source_id, e.entry_version, e.quantity, e.rate, e.amount_minor,
       e.client_key, e.currency, e.period_start, e.period_end, e.billing_period,
       CASE WHEN e.grouping IN ('project_task', 'project', 'entry') THEN e.project_key END,
       CASE WHEN e.grouping IN ('project_task', 'entry') THEN e.task_key END,
       CASE WHEN e.grouping IN ('user', 'entry') THEN e.user_key END,
       CASE WHEN e.grouping IN ('day', 'entry') THEN e.spent_date END
FROM (
    SELECT b.source, b.source_id, b.entry_version, b.client_key, b.currency, b.period_start, b.period_end,
           b.project_key, b.task_key, b.user_key, b.spent_date, b.quantity, b.rate, b.amount_minor,
           coalesce(bc.billing_period, (SELECT billing_period FROM closeout_data.billing_clients
                                         WHERE client_key = '*')) AS billing_period,
           coalesce(bc.grouping, (SELECT grouping FROM closeout_data.billing_clients
                                   WHERE client_key = '*')) AS grouping
    FROM (
        -- a first run judged every entry and nothing is frozen: all of them, without the join
        SELECT b.* FROM closeout_data.billing_entries b WHERE (SELECT first_run FROM billing_run)
        UNION ALL
        SELECT b.*
        FROM billing_dirty d
        JOIN closeout_data.billing_entries b ON b.source = d.source AND b.source_id = d.source_id
        WHERE NOT (SELECT first_run FROM billing_run)
          AND NOT EXISTS (SELECT 1 FROM billing_adjusting a WHERE a.source = d.source AND a.source_id = d.source_id)
    ) b
    LEFT JOIN closeout_data.billing_clients bc ON bc.client_key = b.client_key AND bc.client_key <> '*'
    WHERE b.state = 'billable'
) e;

-- The adjustment path, for the entries collected above.
INSERT INTO billing_desired (invoice_id, line_key, source, source_id, entry_version, quantity, unit_rate,
                             amount_minor, client_key, currency, period_start, period_end, billing_period,
                             description, adjusts_invoice_id, adjusts_line_key, project_key, task_key, user_key,
                             spent_date)
WITH adjusting AS (
    SELECT a.* FROM billing_adjusting a WHERE a.state <> 'exception'
),
targets AS (
    SELECT a.source, a.source_id, a.client_key, a.currency, a.rate AS unit_rate, a.quantity, a.amount_minor
    FROM adjusting a WHERE a.state = 'billable'
),
deltas AS (
    SELECT coalesce(t.source, f.source) AS source, coalesce(t.source_id, f.source_id) AS source_id,
           coalesce(t.client_key, f.client_key) AS client_key, coalesce(t.currency, f.currency) AS currency,
           coalesce(t.unit_rate, f.unit_rate) AS unit_rate,
           coalesce(f.quantity, 0) AS billed_quantity, coalesce(t.quantity, 0) AS target_quantity,
           coalesce(t.quantity, 0) - coalesce(f.quantity, 0) AS quantity,
           coalesce(t.amount_minor, 0) - coalesce(f.amount_minor, 0) AS amount_minor
    FROM targets t
    FULL JOIN (SELECT f.* FROM billing_frozen f JOIN adjusting a ON a.source = f.source AND a.source_id = f.source_id) f
      ON f.source = t.source AND f.source_id = t.source_id AND f.client_key = t.client_key
     AND f.currency = t.currency AND f.unit_rate = t.unit_rate
),
placed AS (
    SELECT d.*, a.entry_version, a.state, a.spent_date, a.project_key, a.task_key, a.user_key, a.period_locked,
           EXISTS (SELECT 1 FROM targets t WHERE t.source = d.source AND t.source_id = d.source_id
                   AND t.client_key = d.client_key AND t.currency = d.currency) AS still_billable,
           coalesce(' (' || pn.name || coalesce(' / ' || tn.name, '') || ')', '') AS what,
           lb.invoice_id AS adjusts_invoice_id, lb.line_key AS adjusts_line_key, li.status AS adjusts_status,
           -- and never in a locked period (greatest ignores the NULL of "nothing locked")
           greatest(coalesce(lf.next_day, a.spent_date), %(locked_through)s::date + 1) AS next_day,
           coalesce(bc.billing_period, df.billing_period) AS billing_period
    FROM deltas d
    JOIN adjusting a ON a.source = d.source AND a.source_id = d.source_id
    CROSS JOIN (SELECT * FROM closeout_data.billing_clients WHERE client_key = '*') df
    LEFT JOIN closeout_data.billing_clients bc ON bc.client_key = d.client_key AND bc.client_key <> '*'
    LEFT JOIN billing_last_billed lb ON lb.source = d.source AND lb.source_id = d.source_id
    LEFT JOIN closeout_data.invoices li ON li.invoice_id = lb.invoice_id
    LEFT JOIN billing_names pn ON pn.kind = 'project' AND pn.key = a.project_key
    LEFT JOIN billing_names tn ON tn.kind = 'task' AND tn.key = a.task_key
    LEFT JOIN LATERAL (
        SELECT max(i.period_end) + 1 AS next_day FROM closeout_data.invoices i
        WHERE i.client_key = d.client_key AND i.currency = d.currency AND i.status <> 'draft'
    ) lf ON true
    WHERE d.quantity <> 0 OR d.amount_minor <> 0
),
adjustment_rows AS (
    SELECT closeout_data.invoice_id(p.client_key, p.currency,
                                    closeout_data.period_start(p.next_day, p.billing_period),
                                    closeout_data.period_end(p.next_day, p.billing_period)) AS invoice_id,
           CASE WHEN p.still_billable THEN 'adj|' ELSE 'credit|' END || p.source || ':' || p.source_id
               || '|' || trim_scale(p.unit_rate)::text AS line_key,
           p.source, p.source_id, p.entry_version, p.quantity, p.unit_rate, p.amount_minor,
           p.client_key, p.currency,
           closeout_data.period_start(p.next_day, p.billing_period) AS period_start,
           closeout_data.period_end(p.next_day, p.billing_period) AS period_end, p.billing_period,
           CASE WHEN NOT p.still_billable THEN
                    'Credit: entry ' || p.source || ':' || p.source_id || ' of ' || p.spent_date || p.what
                    || ', ' || CASE p.state WHEN 'deleted' THEN 'deleted'
                                            WHEN 'billable' THEN 'moved to another client or currency'
                                            ELSE 'no longer billable (' || replace(p.state, '_', ' ') || ')' END
                    || coalesce(', billed on ' || p.adjusts_invoice_id, '')
                WHEN p.adjusts_invoice_id IS NULL THEN
                    'Late time: entry ' || p.source || ':' || p.source_id || ' of ' || p.spent_date || p.what
                    || CASE WHEN p.period_locked THEN ', its period is locked' ELSE ', its period was already invoiced' END
                WHEN p.adjusts_status = 'void' THEN
                    'Re-billed: entry ' || p.source || ':' || p.source_id || ' of ' || p.spent_date || p.what
                    || ', its invoice ' || p.adjusts_invoice_id || ' was voided'
                ELSE
                    'Adjustment: entry ' || p.source || ':' || p.source_id || ' of ' || p.spent_date || p.what
                    || ' at ' || trim_scale(p.unit_rate) || ': billed ' || trim_scale(p.billed_quantity)
                    || ' h on ' || p.adjusts_invoice_id || ', now ' || trim_scale(p.target_quantity) || ' h'
           END AS description,
           p.adjusts_invoice_id, p.adjusts_line_key, p.project_key, p.task_key, p.user_key, p.spent_date
    FROM placed p
)
SELECT * FROM adjustment_rows;

-- the columns later steps join and group on (a full ANALYZE of a million rows costs a third of a second)
ANALYZE billing_desired (invoice_id, line_key, source, source_id);
