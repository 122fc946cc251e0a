-- Expenses on invoices (invariant 10): every approved billable expense version is billed exactly once.
-- Runs after the time steps (10-60), in the same transaction and under the same lock. Expenses are few
-- next to time entries (a month is thousands, not a million), so the expense steps judge every current
-- expense each run and compare the whole result with what open drafts hold: nothing to mark dirty, and
-- a changed expense, client option, identity map, void or lock is picked up by the next run whatever
-- caused it. Only drafts whose expense lines differ get a new version (80_expense_apply).
--
-- Each expense is judged on its current version (closeout.expenses, contract keys through the identity
-- map): billable, or why not. Its cost is the tracker's amount in its own currency (cost_minor, integer
-- minor units), what it bills is that cost plus the client's markup, cost x markup / 100 rounded once,
-- half-up, in the currency's minor unit. An expense is billed in its own currency, on the client's draft
-- of that currency for the period of its spent_date.
--
-- What frozen invoices (any status but draft, and drafts of locked periods) and corrections not voided
-- already bill per expense, client, currency and markup (expense_frozen), and the latest frozen line
-- that billed it (expense_last_billed, for linking an adjustment to what it corrects).
CREATE TEMP TABLE expense_frozen ON COMMIT DROP AS
SELECT x.source, x.source_id, x.client_key, x.currency, x.markup_percent,
       sum(x.cost_minor) AS cost_minor, sum(x.amount_minor) AS amount_minor
FROM (
    SELECT e.source, e.source_id, i.client_key, i.currency, e.markup_percent, e.cost_minor, e.amount_minor
    FROM closeout_data.invoice_line_expenses e
    JOIN closeout_data.invoices i
      ON i.invoice_id = e.invoice_id AND i.status <> 'void'
     AND (i.status <> 'draft' OR i.period_end <= %(locked_through)s::date)
    WHERE e.valid_to IS NULL
    UNION ALL
    SELECT c.source, c.source_id, k.client_key, k.currency, c.markup_percent, c.cost_minor, c.amount_minor
    FROM closeout_data.correction_expenses c
    JOIN closeout_data.corrections k ON k.correction_id = c.correction_id AND k.state <> 'void'
    WHERE NOT EXISTS (SELECT 1 FROM closeout_data.invoices v WHERE v.invoice_id = k.invoice_id AND v.status = 'void')
) x
GROUP BY x.source, x.source_id, x.client_key, x.currency, x.markup_percent;

CREATE TEMP TABLE expense_last_billed ON COMMIT DROP AS
SELECT DISTINCT ON (e.source, e.source_id) e.source, e.source_id, e.invoice_id, e.line_key, i.status
FROM closeout_data.invoice_line_expenses e
JOIN closeout_data.invoices i
  ON i.invoice_id = e.invoice_id AND (i.status <> 'draft' OR i.period_end <= %(locked_through)s::date)
WHERE e.valid_to IS NULL
ORDER BY e.source, e.source_id,
         coalesce(i.frozen_at, (SELECT min(pl.locked_at) FROM closeout_data.period_locks pl
                                WHERE pl.period_end >= i.period_end)) DESC,
         e.valid_from DESC, e.line_key;

-- The verdict on each current expense. billed_in_source: the tracker shows it billed by someone else. An
-- expense closeout already bills on an issued invoice is closeout's own (the write-back marks it billed in
-- the tracker after issue), so the tracker's flag then changes nothing.
-- Markup: the client's expense_markup_percent, except that an expense billed on something frozen keeps the
-- markup it was billed with for as long as its cost is what was billed (a later change of the option does
-- not re-price issued expenses; an edit of the amount re-prices the expense at the option of the day).
CREATE TEMP TABLE expense_judged ON COMMIT DROP AS
WITH pinned AS (
    SELECT f.source, f.source_id, f.client_key, f.currency, sum(f.cost_minor) AS cost_minor,
           min(f.markup_percent) FILTER (WHERE f.amount_minor <> 0) AS markup_percent,
           count(*) FILTER (WHERE f.amount_minor <> 0) AS groups
    FROM expense_frozen f
    GROUP BY f.source, f.source_id, f.client_key, f.currency
),
configured AS (
    SELECT e.source, e.source_id, e.version AS expense_version, e.client_key, e.project_key, e.user_key,
           e.spent_date, e.category, e.billable, e.approved, e.currency, e.amount_minor AS cost_minor,
           e.receipt_url, e.deleted_at, e.billed_in_source, e.source_invoice_ref, e.notes,
           coalesce(bc.billing_period, df.billing_period) AS billing_period,
           coalesce(bc.require_approval, df.require_approval) AS require_approval,
           CASE WHEN p.groups = 1 AND p.cost_minor = e.amount_minor THEN p.markup_percent
                ELSE coalesce(bc.expense_markup_percent, df.expense_markup_percent) END AS markup_percent,
           coalesce(bc.expense_receipt_links, df.expense_receipt_links) AS receipt_links,
           coalesce(bc.expense_grouping, df.expense_grouping) AS grouping,
           EXISTS (SELECT 1 FROM expense_frozen f
                   WHERE f.source = e.source AND f.source_id = e.source_id AND f.amount_minor <> 0) AS billed_by_us
    FROM closeout.expenses e
    CROSS JOIN (SELECT * FROM closeout_data.billing_clients WHERE client_key = '*') df
    LEFT JOIN closeout_data.billing_clients bc ON bc.client_key = e.client_key AND bc.client_key <> '*'
    LEFT JOIN pinned p ON p.source = e.source AND p.source_id = e.source_id AND p.client_key = e.client_key
                      AND p.currency = e.currency
),
verdicts AS (
    SELECT c.*,
           CASE WHEN c.deleted_at IS NOT NULL THEN 'deleted'
                WHEN NOT c.billable THEN 'not_billable'
                WHEN c.require_approval AND NOT c.approved THEN 'not_approved'
                WHEN c.billed_in_source AND NOT c.billed_by_us THEN 'billed_in_source'
                WHEN c.client_key IS NULL THEN 'exception'
                ELSE 'billable' END AS state
    FROM configured c
)
SELECT v.*,
       CASE WHEN v.state = 'exception' THEN 'no_client' END AS reason,
       CASE WHEN v.state = 'billable'
            THEN v.cost_minor + round(v.cost_minor * v.markup_percent / 100)::bigint END AS amount_minor,
       coalesce(cal.period_start, closeout_data.period_start(v.spent_date, v.billing_period)) AS period_start,
       coalesce(cal.period_end, closeout_data.period_end(v.spent_date, v.billing_period)) AS period_end
FROM verdicts v
LEFT JOIN closeout_data.billing_calendar cal ON cal.kind = v.billing_period AND cal.day = v.spent_date;

-- Expenses billed through adjustments: those a frozen or locked invoice (or a correction) bills, those in a
-- locked period, and those whose client already has a frozen invoice of that currency covering the day.
CREATE TEMP TABLE expense_adjusting ON COMMIT DROP AS
SELECT j.*, coalesce(j.period_end <= %(locked_through)s::date, false) AS period_locked
FROM expense_judged j
WHERE EXISTS (SELECT 1 FROM expense_frozen f WHERE f.source = j.source AND f.source_id = j.source_id)
   OR EXISTS (SELECT 1 FROM expense_last_billed lb WHERE lb.source = j.source AND lb.source_id = j.source_id)
   OR j.period_end <= %(locked_through)s::date
   OR EXISTS (SELECT 1 FROM closeout_data.invoices i
              WHERE i.client_key = j.client_key AND i.currency = j.currency AND i.status <> 'draft'
                AND i.period_start <= j.spent_date AND j.spent_date <= i.period_end);
