-- What open drafts should hold for expenses, as rows (expense_desired) and lines (expense_desired_lines).
--
-- * Not billed on anything frozen, its period not frozen or locked: one row on the 'expense' line of its
--   client, currency and period, grouped by category or one line per expense (the client's
--   expense_grouping) and by markup (a line has one markup).
-- * Otherwise the difference between what it bills now and what frozen invoices and corrections billed,
--   per markup, on the client's next draft after every frozen invoice and the lock: 'xadj' rows while it
--   is still billable for that client and currency (edits, unit price changes, late expenses, re-billing
--   after a void), 'xcredit' rows when it no longer is (deleted, unapproved, not billable, moved). An
--   expense in exception keeps what was billed until it is fixed.
-- Line keys start with 'x' (xexp, xadj, xcredit): the time steps and the time check leave them alone.
CREATE TEMP TABLE expense_desired (
    invoice_id          text NOT NULL,
    line_key            text COLLATE "C" NOT NULL,
    kind                text NOT NULL,
    source              text COLLATE "C" NOT NULL,
    source_id           text COLLATE "C" NOT NULL,
    expense_version     integer NOT NULL,
    cost_minor          bigint NOT NULL,
    markup_percent      numeric NOT NULL,
    amount_minor        bigint NOT NULL,
    client_key          text NOT NULL,
    currency            text NOT NULL,
    period_start        date NOT NULL,
    period_end          date NOT NULL,
    billing_period      text NOT NULL,
    category            text,
    spent_date          date,
    project_key         text,
    user_key            text,
    item                text NOT NULL,       -- how the row is named in a line description
    receipt_url         text,
    adjusts_invoice_id  text,
    adjusts_line_key    text,
    adjustment_note     text                 -- an adjustment's or credit's own description
) ON COMMIT DROP;

-- The expense path: billable expenses nothing frozen knows about.
INSERT INTO expense_desired (invoice_id, line_key, kind, source, source_id, expense_version, cost_minor,
                             markup_percent, amount_minor, client_key, currency, period_start, period_end,
                             billing_period, category, spent_date, project_key, user_key, item, receipt_url)
SELECT closeout_data.invoice_id(j.client_key, j.currency, j.period_start, j.period_end),
       'xexp|' || CASE j.grouping WHEN 'expense' THEN 'e|' || j.source || ':' || j.source_id
                                 ELSE 'c|' || coalesce(j.category, '') END
               || '|' || trim_scale(j.markup_percent)::text,
       'expense', j.source, j.source_id, j.expense_version, j.cost_minor, j.markup_percent, j.amount_minor,
       j.client_key, j.currency, j.period_start, j.period_end, j.billing_period,
       j.category,
       CASE WHEN j.grouping = 'expense' THEN j.spent_date END,
       CASE WHEN j.grouping = 'expense' THEN j.project_key END,
       CASE WHEN j.grouping = 'expense' THEN j.user_key END,
       j.spent_date || ' ' || coalesce(j.category, 'Expense') || coalesce(': ' || nullif(btrim(j.notes), ''), ''),
       CASE WHEN j.receipt_links THEN j.receipt_url END
FROM expense_judged j
WHERE j.state = 'billable'
  AND NOT EXISTS (SELECT 1 FROM expense_adjusting a WHERE a.source = j.source AND a.source_id = j.source_id);

-- The adjustment path.
INSERT INTO expense_desired (invoice_id, line_key, kind, source, source_id, expense_version, cost_minor,
                             markup_percent, amount_minor, client_key, currency, period_start, period_end,
                             billing_period, category, spent_date, project_key, user_key, item, receipt_url,
                             adjusts_invoice_id, adjusts_line_key, adjustment_note)
WITH adjusting AS (
    SELECT a.* FROM expense_adjusting a WHERE a.state <> 'exception'
),
targets AS (
    SELECT a.source, a.source_id, a.client_key, a.currency, a.markup_percent, a.cost_minor, a.amount_minor
    FROM adjusting a WHERE a.state = 'billable'
),
deltas AS (
    SELECT coalesce(t.source, f.source) AS source, coalesce(t.source_id, f.source_id) AS source_id,
           coalesce(t.client_key, f.client_key) AS client_key, coalesce(t.currency, f.currency) AS currency,
           coalesce(t.markup_percent, f.markup_percent) AS markup_percent,
           coalesce(f.cost_minor, 0) AS billed_cost_minor, coalesce(t.cost_minor, 0) AS target_cost_minor,
           coalesce(t.cost_minor, 0) - coalesce(f.cost_minor, 0) AS cost_minor,
           coalesce(t.amount_minor, 0) - coalesce(f.amount_minor, 0) AS amount_minor
    FROM targets t
    FULL JOIN (SELECT f.* FROM expense_frozen f JOIN adjusting a ON a.source = f.source AND a.source_id = f.source_id) f
      ON f.source = t.source AND f.source_id = t.source_id AND f.client_key = t.client_key
     AND f.currency = t.currency AND f.markup_percent = t.markup_percent
),
placed AS (
    SELECT d.*, a.expense_version, a.state, a.spent_date, a.category, a.project_key, a.user_key, a.period_locked,
           a.receipt_url, a.receipt_links,
           EXISTS (SELECT 1 FROM targets t WHERE t.source = d.source AND t.source_id = d.source_id
                   AND t.client_key = d.client_key AND t.currency = d.currency) AS still_billable,
           lb.invoice_id AS adjusts_invoice_id, lb.line_key AS adjusts_line_key, lb.status AS adjusts_status,
           greatest(coalesce(lf.next_day, a.spent_date), %(locked_through)s::date + 1) AS next_day,
           coalesce(bc.billing_period, df.billing_period) AS billing_period
    FROM deltas d
    JOIN adjusting a ON a.source = d.source AND a.source_id = d.source_id
    CROSS JOIN (SELECT * FROM closeout_data.billing_clients WHERE client_key = '*') df
    LEFT JOIN closeout_data.billing_clients bc ON bc.client_key = d.client_key AND bc.client_key <> '*'
    LEFT JOIN expense_last_billed lb ON lb.source = d.source AND lb.source_id = d.source_id
    LEFT JOIN LATERAL (
        SELECT max(i.period_end) + 1 AS next_day FROM closeout_data.invoices i
        WHERE i.client_key = d.client_key AND i.currency = d.currency AND i.status <> 'draft'
    ) lf ON true
    WHERE d.cost_minor <> 0 OR d.amount_minor <> 0
)
SELECT closeout_data.invoice_id(p.client_key, p.currency,
                                closeout_data.period_start(p.next_day, p.billing_period),
                                closeout_data.period_end(p.next_day, p.billing_period)),
       CASE WHEN p.still_billable THEN 'xadj|' ELSE 'xcredit|' END || p.source || ':' || p.source_id
           || '|' || trim_scale(p.markup_percent)::text,
       CASE WHEN p.still_billable THEN 'adjustment' ELSE 'credit' END,
       p.source, p.source_id, p.expense_version, p.cost_minor, p.markup_percent, p.amount_minor,
       p.client_key, p.currency,
       closeout_data.period_start(p.next_day, p.billing_period),
       closeout_data.period_end(p.next_day, p.billing_period), p.billing_period,
       p.category, p.spent_date, p.project_key, p.user_key,
       'expense ' || p.source || ':' || p.source_id || ' of ' || p.spent_date
           || coalesce(' (' || p.category || ')', ''),
       CASE WHEN p.receipt_links THEN p.receipt_url END,
       p.adjusts_invoice_id, p.adjusts_line_key,
       CASE WHEN NOT p.still_billable THEN
                'Credit: expense ' || p.source || ':' || p.source_id || ' of ' || p.spent_date
                || coalesce(' (' || p.category || ')', '') || ', '
                || CASE p.state WHEN 'deleted' THEN 'deleted'
                                WHEN 'billable' THEN 'moved to another client or currency'
                                ELSE 'no longer billable (' || replace(p.state, '_', ' ') || ')' END
                || coalesce(', billed on ' || p.adjusts_invoice_id, '')
            WHEN p.adjusts_invoice_id IS NULL THEN
                'Late expense: ' || p.source || ':' || p.source_id || ' of ' || p.spent_date
                || coalesce(' (' || p.category || ')', '')
                || CASE WHEN p.period_locked THEN ', its period is locked' ELSE ', its period was already invoiced' END
            WHEN p.adjusts_status = 'void' THEN
                'Re-billed: expense ' || p.source || ':' || p.source_id || ' of ' || p.spent_date
                || coalesce(' (' || p.category || ')', '') || ', its invoice ' || p.adjusts_invoice_id || ' was voided'
            ELSE
                'Adjustment: expense ' || p.source || ':' || p.source_id || ' of ' || p.spent_date
                || coalesce(' (' || p.category || ')', '') || ': billed cost '
                || trim_scale(p.billed_cost_minor / (10::numeric ^ cur.exponent)) || ' on ' || p.adjusts_invoice_id
                || ', now ' || trim_scale(p.target_cost_minor / (10::numeric ^ cur.exponent))
       END
FROM placed p
JOIN closeout_data.currencies cur ON cur.code = p.currency;

-- The lines those rows make: a line's quantity is its rows' cost in major units, its unit rate 1 + markup,
-- its amount quantity x rate rounded once, half-up, in the minor unit (the same rule as time lines), and
-- rounding_minor the difference to the sum of its rows' own amounts. Descriptions follow from the rows.
CREATE TEMP TABLE expense_desired_lines ON COMMIT DROP AS
WITH sums AS (
    SELECT d.invoice_id, d.line_key, min(d.kind) AS kind, min(d.currency) AS currency,
           min(d.markup_percent) AS markup_percent, sum(d.cost_minor) AS cost_minor,
           sum(d.amount_minor) AS rows_minor, count(*)::integer AS entry_count,
           min(d.category) AS category, min(d.spent_date) AS spent_date, min(d.project_key) AS project_key,
           min(d.user_key) AS user_key, min(d.item) AS item, min(d.adjustment_note) AS adjustment_note,
           min(d.adjusts_invoice_id) AS adjusts_invoice_id, min(d.adjusts_line_key) AS adjusts_line_key,
           string_agg(DISTINCT d.receipt_url, ', ' ORDER BY d.receipt_url) AS receipts
    FROM expense_desired d
    GROUP BY d.invoice_id, d.line_key
),
priced AS (
    SELECT s.*, 10::numeric ^ c.exponent AS scale,
           trim_scale(s.cost_minor / (10::numeric ^ c.exponent)) AS quantity,
           trim_scale(1 + s.markup_percent / 100) AS unit_rate
    FROM sums s JOIN closeout_data.currencies c ON c.code = s.currency
)
SELECT p.invoice_id, p.line_key, p.kind,
       CASE WHEN p.kind <> 'expense' THEN p.adjustment_note
            WHEN split_part(p.line_key, '|', 2) = 'e' THEN 'Expense ' || p.item
            ELSE 'Expenses: ' || coalesce(nullif(p.category, ''), 'uncategorised') || ' (' || p.entry_count
                 || CASE WHEN p.entry_count = 1 THEN ' item' ELSE ' items' END || ')'
       END
       || CASE WHEN p.markup_percent <> 0 THEN ', incl. ' || trim_scale(p.markup_percent) || '% markup' ELSE '' END
       || coalesce(CASE WHEN strpos(p.receipts, ', ') > 0 THEN ', receipts: ' ELSE ', receipt: ' END || p.receipts, '')
           AS description,
       p.quantity, p.unit_rate,
       round(p.quantity * p.unit_rate * p.scale)::bigint AS amount_minor,
       round(p.quantity * p.unit_rate * p.scale)::bigint - p.rows_minor AS rounding_minor,
       p.entry_count, p.project_key, p.user_key, p.spent_date, p.adjusts_invoice_id, p.adjusts_line_key
FROM priced p;
