-- Weekly summary: the approved time of the week (and of the earlier weeks it restates) read ONCE, giving both the
-- time lines (as time_lines.sql with bucket 'week') and the payroll rows (as payroll.sql, for the summarised week
-- only). Two separate queries read the same ~20,000 entries of a busy week twice (heap, heads join, identity map);
-- this one materialises them once and groups them twice. Rows come in two parts: 'line' first, ordered as
-- time_lines.sql orders them, then 'payroll', ordered as payroll.sql does.
-- Cost and billable value rules are time_lines.sql's (keep the two in step): cost is approved hours x the payee's
-- cost_rate, rounded once per line; no active payee -> NULL cost, never 0.
-- Parameters: range_start, range_end (Monday of the earliest week, Sunday of the summarised week), week_start,
-- week_end (the summarised week).
WITH entries AS MATERIALIZED (
    SELECT t.spent_date, t.client_key, t.project_key, t.user_key, t.currency, t.hours, t.billable_hours,
           t.billable, t.amount_minor
    FROM closeout.time_entries t
    WHERE t.deleted_at IS NULL AND t.approved
      AND t.spent_date BETWEEN %(range_start)s AND %(range_end)s
), lines AS (
    SELECT date_trunc('week', e.spent_date)::date AS bucket_start, e.client_key, e.project_key, e.user_key,
           e.currency,
           sum(e.hours) AS approved_hours,
           coalesce(sum(e.billable_hours) FILTER (WHERE e.billable), 0) AS billable_hours,
           coalesce(sum(e.amount_minor) FILTER (WHERE e.billable), 0) AS billable_value_minor,
           count(*) FILTER (WHERE e.billable AND e.amount_minor IS NULL) AS unrated_entries,
           coalesce(sum(e.hours) FILTER (WHERE NOT e.billable), 0) AS nonbillable_hours,
           count(*) AS entries
    FROM entries e
    GROUP BY 1, 2, 3, 4, 5
), payroll AS (
    SELECT e.user_key, e.spent_date, e.client_key, e.project_key,
           sum(e.hours) AS hours,
           coalesce(sum(e.hours) FILTER (WHERE e.billable), 0) AS billable_hours,
           count(*) AS entries
    FROM entries e
    WHERE e.spent_date BETWEEN %(week_start)s AND %(week_end)s
    GROUP BY 1, 2, 3, 4
), parts AS (
    SELECT 'line' AS part, l.bucket_start, NULL::date AS spent_date, l.client_key, l.project_key, l.user_key,
           l.currency, cur.exponent,
           l.approved_hours, l.billable_hours, l.billable_value_minor, l.unrated_entries, l.nonbillable_hours,
           l.entries, p.cost_rate, p.currency AS cost_currency, pc.exponent AS cost_exponent,
           CASE WHEN p.payee_key IS NOT NULL
                THEN round(l.approved_hours * p.cost_rate * 10::numeric ^ pc.exponent)::bigint END AS cost_minor
    FROM lines l
    JOIN closeout_data.currencies cur ON cur.code = l.currency
    LEFT JOIN closeout.payout_payees p ON p.payee_key = l.user_key AND p.active
    LEFT JOIN closeout_data.currencies pc ON pc.code = p.currency
    UNION ALL
    SELECT 'payroll', NULL, w.spent_date, w.client_key, w.project_key, w.user_key,
           NULL, NULL, w.hours, w.billable_hours, NULL, NULL, NULL, w.entries, NULL, NULL, NULL, NULL
    FROM payroll w
)
SELECT * FROM parts
ORDER BY part, CASE WHEN part = 'payroll' THEN user_key END, coalesce(bucket_start, spent_date), client_key,
         project_key, user_key, currency;
