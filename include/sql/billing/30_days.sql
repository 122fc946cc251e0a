-- Record the judgements, then apply the one rule that spans entries: a user cannot work more than
-- 24 hours in a day (across every tracker, after identity mapping). Every billable entry of such a day
-- becomes an exception; when the day is fixed they come back. Entries whose state this changes join
-- the dirty set, so their billing follows.
CREATE TEMP TABLE billing_days ON COMMIT DROP AS
SELECT DISTINCT b.user_key, b.spent_date
FROM billing_dirty d
JOIN closeout_data.billing_entries b ON b.source = d.source AND b.source_id = d.source_id;

-- entries judged before: updated in place (this table is working state; history lives in versions)
UPDATE closeout_data.billing_entries b SET
    entry_version = j.entry_version, client_key = j.client_key, project_key = j.project_key,
    task_key = j.task_key, user_key = j.user_key, spent_date = j.spent_date, day_hours = j.day_hours,
    quantity = j.quantity, rate = j.rate, entry_currency = j.entry_currency, currency = j.currency,
    amount_minor = j.amount_minor, period_start = j.period_start, period_end = j.period_end,
    base_state = j.base_state, base_reason = j.base_reason, base_field = j.base_field,
    state = j.base_state, reason = j.base_reason, field = j.base_field,
    source_invoice_ref = j.source_invoice_ref, project_name = j.project_name, task_name = j.task_name,
    user_name = j.user_name, evaluated_at = clock_timestamp()
FROM billing_judged j
WHERE j.known AND b.source = j.source AND b.source_id = j.source_id;

-- entries judged for the first time (the whole set on a first run: a plain insert, no upsert)
INSERT INTO closeout_data.billing_entries (
    source, source_id, entry_version, client_key, project_key, task_key, user_key, spent_date, day_hours,
    quantity, rate, entry_currency, currency, amount_minor, period_start, period_end,
    base_state, base_reason, base_field, state, reason, field, source_invoice_ref,
    project_name, task_name, user_name)
SELECT j.source, j.source_id, j.entry_version, j.client_key, j.project_key, j.task_key, j.user_key,
       j.spent_date, j.day_hours, j.quantity, j.rate, j.entry_currency, j.currency, j.amount_minor,
       j.period_start, j.period_end, j.base_state, j.base_reason, j.base_field,
       j.base_state, j.base_reason, j.base_field, j.source_invoice_ref, j.project_name, j.task_name, j.user_name
FROM billing_judged j
WHERE NOT j.known;

-- the days the judged entries are on now (billing_days already holds the days they were on before)
INSERT INTO billing_days (user_key, spent_date)
SELECT DISTINCT b.user_key, b.spent_date
FROM billing_dirty d
JOIN closeout_data.billing_entries b ON b.source = d.source AND b.source_id = d.source_id;

WITH totals AS (
    SELECT b.user_key, b.spent_date, sum(b.day_hours) AS total
    FROM (SELECT DISTINCT user_key, spent_date FROM billing_days) d
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
