-- Write the difference between what open drafts should hold for expenses (80_expense_desired) and what they
-- hold: rows and lines that no longer hold are closed at the invoice's next version, new ones start at it,
-- everything else carries over unwritten. Open drafts: status draft, period not locked (a locked draft is
-- fixed: 70_expense_judge counts it as frozen).
CREATE TEMP TABLE expense_current ON COMMIT DROP AS
SELECT e.invoice_id, e.line_key, e.source, e.source_id, e.expense_version, e.cost_minor, e.markup_percent,
       e.amount_minor, e.valid_from
FROM closeout_data.invoice_line_expenses e
JOIN closeout_data.invoices i
  ON i.invoice_id = e.invoice_id AND i.status = 'draft'
 AND NOT coalesce(i.period_end <= %(locked_through)s::date, false)
WHERE e.valid_to IS NULL;

CREATE TEMP TABLE expense_current_lines ON COMMIT DROP AS
SELECT l.invoice_id, l.line_key, l.valid_from, l.kind, l.description, l.quantity, l.unit_rate, l.amount_minor,
       l.rounding_minor, l.entry_count, l.project_key, l.user_key, l.spent_date, l.adjusts_invoice_id,
       l.adjusts_line_key
FROM closeout_data.invoice_lines l
JOIN closeout_data.invoices i
  ON i.invoice_id = l.invoice_id AND i.status = 'draft'
 AND NOT coalesce(i.period_end <= %(locked_through)s::date, false)
WHERE l.valid_to IS NULL AND l.line_key LIKE 'x%%';

CREATE TEMP TABLE expense_rows_to_close ON COMMIT DROP AS
SELECT c.* FROM expense_current c
WHERE NOT EXISTS (
    SELECT 1 FROM expense_desired d
    WHERE d.invoice_id = c.invoice_id AND d.line_key = c.line_key AND d.source = c.source
      AND d.source_id = c.source_id AND d.expense_version = c.expense_version AND d.cost_minor = c.cost_minor
      AND d.markup_percent = c.markup_percent AND d.amount_minor = c.amount_minor);

CREATE TEMP TABLE expense_rows_to_add ON COMMIT DROP AS
SELECT d.* FROM expense_desired d
WHERE NOT EXISTS (
    SELECT 1 FROM expense_current c
    WHERE d.invoice_id = c.invoice_id AND d.line_key = c.line_key AND d.source = c.source
      AND d.source_id = c.source_id AND d.expense_version = c.expense_version AND d.cost_minor = c.cost_minor
      AND d.markup_percent = c.markup_percent AND d.amount_minor = c.amount_minor);

CREATE TEMP TABLE expense_lines_to_close ON COMMIT DROP AS
SELECT c.* FROM expense_current_lines c
WHERE NOT EXISTS (
    SELECT 1 FROM expense_desired_lines d
    WHERE d.invoice_id = c.invoice_id AND d.line_key = c.line_key AND d.kind = c.kind
      AND d.description = c.description AND d.quantity = c.quantity AND d.unit_rate = c.unit_rate
      AND d.amount_minor = c.amount_minor AND d.rounding_minor = c.rounding_minor AND d.entry_count = c.entry_count
      AND d.project_key IS NOT DISTINCT FROM c.project_key AND d.user_key IS NOT DISTINCT FROM c.user_key
      AND d.spent_date IS NOT DISTINCT FROM c.spent_date
      AND d.adjusts_invoice_id IS NOT DISTINCT FROM c.adjusts_invoice_id
      AND d.adjusts_line_key IS NOT DISTINCT FROM c.adjusts_line_key);

CREATE TEMP TABLE expense_lines_to_add ON COMMIT DROP AS
SELECT d.* FROM expense_desired_lines d
WHERE NOT EXISTS (
    SELECT 1 FROM expense_current_lines c
    WHERE d.invoice_id = c.invoice_id AND d.line_key = c.line_key AND d.kind = c.kind
      AND d.description = c.description AND d.quantity = c.quantity AND d.unit_rate = c.unit_rate
      AND d.amount_minor = c.amount_minor AND d.rounding_minor = c.rounding_minor AND d.entry_count = c.entry_count
      AND d.project_key IS NOT DISTINCT FROM c.project_key AND d.user_key IS NOT DISTINCT FROM c.user_key
      AND d.spent_date IS NOT DISTINCT FROM c.spent_date
      AND d.adjusts_invoice_id IS NOT DISTINCT FROM c.adjusts_invoice_id
      AND d.adjusts_line_key IS NOT DISTINCT FROM c.adjusts_line_key);

-- Drafts that do not exist yet (an expense-only period, or a currency the client has no time in): one per
-- client, currency and period, with the client's terms (min() picks the one value each group holds).
INSERT INTO closeout_data.invoices (invoice_id, client_key, currency, period_start, period_end, billing_period,
                                    payment_terms_days, publish_policy)
SELECT a.invoice_id, a.client_key, a.currency, a.period_start, a.period_end, a.billing_period,
       coalesce(bc.payment_terms_days, df.payment_terms_days), coalesce(bc.publish_policy, df.publish_policy)
FROM (SELECT invoice_id, min(client_key) AS client_key, min(currency) AS currency,
             min(period_start) AS period_start, min(period_end) AS period_end,
             min(billing_period) AS billing_period
      FROM expense_rows_to_add GROUP BY invoice_id) a
CROSS JOIN (SELECT * FROM closeout_data.billing_clients WHERE client_key = '*') df
LEFT JOIN closeout_data.billing_clients bc ON bc.client_key = a.client_key AND bc.client_key <> '*'
ORDER BY a.invoice_id
ON CONFLICT (invoice_id) DO NOTHING;

-- Every invoice with a difference, and the version it becomes (one new version per invoice and step).
CREATE TEMP TABLE expense_bumped ON COMMIT DROP AS
SELECT i.invoice_id, i.version + 1 AS version, i.status,
       coalesce(i.period_end <= %(locked_through)s::date, false) AS locked
FROM closeout_data.invoices i
WHERE i.invoice_id IN (SELECT invoice_id FROM expense_rows_to_close UNION SELECT invoice_id FROM expense_rows_to_add
                       UNION SELECT invoice_id FROM expense_lines_to_close
                       UNION SELECT invoice_id FROM expense_lines_to_add);

-- Never write to a frozen or locked invoice (the desired rows are placed on open drafts only, and this is the
-- proof, checked before anything is written: the run fails rather than bill an issued invoice twice).
SELECT CASE WHEN count(*) = 0 THEN 0
            ELSE ('closeout: expense billing would change frozen or locked invoice ' || min(invoice_id))::integer
       END AS expense_rows_only_on_open_drafts
FROM expense_bumped WHERE status <> 'draft' OR locked;

UPDATE closeout_data.invoice_line_expenses e
SET valid_to = b.version
FROM expense_rows_to_close c
JOIN expense_bumped b ON b.invoice_id = c.invoice_id
WHERE e.source_id = c.source_id AND e.source = c.source AND e.valid_to IS NULL
  AND e.invoice_id = c.invoice_id AND e.line_key = c.line_key AND e.valid_from = c.valid_from;

INSERT INTO closeout_data.invoice_line_expenses (invoice_id, line_key, source, source_id, expense_version,
                                                 cost_minor, markup_percent, amount_minor, valid_from)
SELECT a.invoice_id, a.line_key, a.source, a.source_id, a.expense_version, a.cost_minor, a.markup_percent,
       a.amount_minor, b.version
FROM expense_rows_to_add a
JOIN expense_bumped b ON b.invoice_id = a.invoice_id;

UPDATE closeout_data.invoice_lines l
SET valid_to = b.version
FROM expense_lines_to_close c
JOIN expense_bumped b ON b.invoice_id = c.invoice_id
WHERE l.invoice_id = c.invoice_id AND l.line_key = c.line_key AND l.valid_from = c.valid_from AND l.valid_to IS NULL;

INSERT INTO closeout_data.invoice_lines (invoice_id, line_key, valid_from, kind, description, quantity, unit_rate,
                                         amount_minor, rounding_minor, entry_count, project_key, task_key, user_key,
                                         spent_date, adjusts_invoice_id, adjusts_line_key)
SELECT a.invoice_id, a.line_key, b.version, a.kind, a.description, a.quantity, a.unit_rate, a.amount_minor,
       a.rounding_minor, a.entry_count, a.project_key, NULL, a.user_key, a.spent_date, a.adjusts_invoice_id,
       a.adjusts_line_key
FROM expense_lines_to_add a
JOIN expense_bumped b ON b.invoice_id = a.invoice_id;

-- The new version of every changed invoice: totals move by the lines closed and added, terms follow the
-- client's current configuration, and the version is recorded with its totals.
WITH changes AS (
    SELECT b.invoice_id, b.version,
           coalesce(sum(x.amount_minor), 0) AS total_minor, coalesce(sum(x.lines), 0)::integer AS line_count,
           coalesce(sum(x.entry_count), 0)::integer AS entry_count
    FROM expense_bumped b
    LEFT JOIN (
        SELECT invoice_id, amount_minor, 1 AS lines, entry_count FROM expense_lines_to_add
        UNION ALL
        SELECT invoice_id, -amount_minor, -1, -entry_count FROM expense_lines_to_close
    ) x ON x.invoice_id = b.invoice_id
    GROUP BY b.invoice_id, b.version
),
updated AS (
    UPDATE closeout_data.invoices i
    SET version = c.version, updated_at = clock_timestamp(),
        total_minor = i.total_minor + c.total_minor, line_count = i.line_count + c.line_count,
        entry_count = i.entry_count + c.entry_count,
        payment_terms_days = coalesce(bc.payment_terms_days, df.payment_terms_days),
        publish_policy = coalesce(bc.publish_policy, df.publish_policy)
    FROM changes c
    CROSS JOIN (SELECT * FROM closeout_data.billing_clients WHERE client_key = '*') df
    LEFT JOIN closeout_data.billing_clients bc
           ON bc.client_key <> '*'
          AND bc.client_key = (SELECT client_key FROM closeout_data.invoices WHERE invoice_id = c.invoice_id)
    WHERE i.invoice_id = c.invoice_id
    RETURNING i.invoice_id, i.version, i.total_minor, i.line_count, i.entry_count
)
INSERT INTO closeout_data.invoice_versions (invoice_id, version, draft_run_id, total_minor, line_count, entry_count)
SELECT u.invoice_id, u.version, %(draft_run_id)s, u.total_minor, u.line_count, u.entry_count
FROM updated u;
