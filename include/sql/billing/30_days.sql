-- Record the judgements, then apply the one rule that spans entries: a user cannot work more than
-- 24 hours in a day (across every tracker, after identity mapping). Every billable entry of such a day
-- becomes an exception; when the day is fixed they come back. Entries whose state this changes join
-- the dirty set, so their billing follows.
CREATE TEMP TABLE billing_days ON COMMIT DROP AS
SELECT b.user_key, b.spent_date
FROM billing_dirty d
JOIN closeout_data.billing_entries b ON b.source = d.source AND b.source_id = d.source_id
UNION
SELECT j.user_key, j.spent_date FROM billing_judged j;

INSERT INTO closeout_data.billing_entries AS b (
    source, source_id, entry_version, client_key, project_key, task_key, user_key, spent_date, day_hours,
    quantity, rate, entry_currency, currency, amount_minor, period_start, period_end,
    base_state, base_reason, base_field, state, reason, field, source_invoice_ref,
    project_name, task_name, user_name)
SELECT j.source, j.source_id, j.entry_version, j.client_key, j.project_key, j.task_key, j.user_key,
       j.spent_date, j.day_hours, j.quantity, j.rate, j.entry_currency, j.currency, j.amount_minor,
       j.period_start, j.period_end, j.base_state, j.base_reason, j.base_field,
       j.base_state, j.base_reason, j.base_field, j.source_invoice_ref, j.project_name, j.task_name, j.user_name
FROM billing_judged j
ON CONFLICT (source, source_id) DO UPDATE SET
    entry_version = excluded.entry_version, client_key = excluded.client_key,
    project_key = excluded.project_key, task_key = excluded.task_key, user_key = excluded.user_key,
    spent_date = excluded.spent_date, day_hours = excluded.day_hours, quantity = excluded.quantity,
    rate = excluded.rate, entry_currency = excluded.entry_currency, currency = excluded.currency,
    amount_minor = excluded.amount_minor, period_start = excluded.period_start,
    period_end = excluded.period_end, base_state = excluded.base_state, base_reason = excluded.base_reason,
    base_field = excluded.base_field, state = excluded.state, reason = excluded.reason,
    field = excluded.field, source_invoice_ref = excluded.source_invoice_ref,
    project_name = excluded.project_name, task_name = excluded.task_name, user_name = excluded.user_name,
    evaluated_at = clock_timestamp();

WITH totals AS (
    SELECT b.user_key, b.spent_date, sum(b.day_hours) AS total
    FROM billing_days d
    JOIN closeout_data.billing_entries b ON b.user_key = d.user_key AND b.spent_date = d.spent_date
    GROUP BY b.user_key, b.spent_date
    HAVING sum(b.day_hours) > 24
        OR bool_or(b.reason = 'over_24h_day')
),
target AS (
    SELECT b.source, b.source_id,
           CASE WHEN t.total > 24 AND b.base_state = 'billable' THEN 'exception' ELSE b.base_state END AS state,
           CASE WHEN t.total > 24 AND b.base_state = 'billable' THEN 'over_24h_day' ELSE b.base_reason END AS reason,
           CASE WHEN t.total > 24 AND b.base_state = 'billable' THEN 'hours' ELSE b.base_field END AS field
    FROM totals t
    JOIN closeout_data.billing_entries b ON b.user_key = t.user_key AND b.spent_date = t.spent_date
),
changed AS (
    UPDATE closeout_data.billing_entries b
    SET state = t.state, reason = t.reason, field = t.field
    FROM target t
    WHERE b.source = t.source AND b.source_id = t.source_id
      AND (b.state, b.reason, b.field) IS DISTINCT FROM (t.state, t.reason, t.field)
    RETURNING b.source, b.source_id
)
INSERT INTO billing_dirty (source, source_id)
SELECT source, source_id FROM changed
ON CONFLICT DO NOTHING;
