-- Weekly summary (and the close report's margin view): approved time per bucket (ISO week, or month), client,
-- project, person and entry currency, with the person's contractor cost. Parameters: bucket ('week' or 'month', for date_trunc), range_start, range_end (several weeks at
-- once when earlier weeks are restated for "changes since last summarised").
-- Cost is approved hours x the payee's cost_rate in the payee's currency, rounded once per line (half away from
-- zero, as numeric round does; amounts are never negative). A person with no active payee configuration gets
-- NULL cost, never 0: the summary shows "no cost rate" for them.
-- Billable value is the entries' own amount_minor (rate snapshot x billable hours, rounded per entry by capture);
-- an approved billable entry without an amount (no rate) is counted in unrated_entries instead.
WITH entries AS (
    SELECT date_trunc(%(bucket)s, t.spent_date)::date AS bucket_start, t.client_key, t.project_key, t.user_key,
           t.currency,
           sum(t.hours) AS approved_hours,
           coalesce(sum(t.billable_hours) FILTER (WHERE t.billable), 0) AS billable_hours,
           coalesce(sum(t.amount_minor) FILTER (WHERE t.billable), 0) AS billable_value_minor,
           count(*) FILTER (WHERE t.billable AND t.amount_minor IS NULL) AS unrated_entries,
           coalesce(sum(t.hours) FILTER (WHERE NOT t.billable), 0) AS nonbillable_hours,
           count(*) AS entries
    FROM closeout.time_entries t
    WHERE t.deleted_at IS NULL AND t.approved
      AND t.spent_date BETWEEN %(range_start)s AND %(range_end)s
    GROUP BY 1, 2, 3, 4, 5
)
SELECT e.bucket_start, e.client_key, e.project_key, e.user_key, e.currency, cur.exponent,
       e.approved_hours, e.billable_hours, e.billable_value_minor, e.unrated_entries, e.nonbillable_hours,
       e.entries, p.cost_rate, p.currency AS cost_currency, pc.exponent AS cost_exponent,
       CASE WHEN p.payee_key IS NOT NULL
            THEN round(e.approved_hours * p.cost_rate * 10::numeric ^ pc.exponent)::bigint END AS cost_minor,
       p.name AS payee_name
FROM entries e
JOIN closeout_data.currencies cur ON cur.code = e.currency
LEFT JOIN closeout.payout_payees p ON p.payee_key = e.user_key AND p.active
LEFT JOIN closeout_data.currencies pc ON pc.code = p.currency
ORDER BY e.bucket_start, e.client_key, e.project_key, e.user_key, e.currency;
