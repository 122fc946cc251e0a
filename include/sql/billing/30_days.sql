-- The one rule that spans entries: a user cannot work more than 24 hours in a day (across every
-- tracker, after identity mapping). Every billable entry of such a day becomes an exception; when the
-- day is fixed they come back. Entries whose state this changes join the dirty set, so their billing
-- follows. The days to look at are the ones the judged entries were on (kept in billing_dirty) and
-- are on now (billing_days, collected by 20_judge).
INSERT INTO billing_days (user_key, spent_date)
SELECT DISTINCT old_user_key, old_spent_date FROM billing_dirty WHERE known;

ANALYZE billing_days;

-- No index by user and day: a refresh's few thousand days are found in one pass over the entries as
-- fast as by as many index probes, and a first run does not build one over a million rows.
WITH totals AS (
    SELECT b.user_key, b.spent_date, sum(b.day_hours) AS total
    FROM closeout_data.billing_entries b
    WHERE ((SELECT first_run FROM billing_run)
           OR (b.spent_date, b.user_key) IN (SELECT spent_date, user_key FROM billing_days))
      AND ((SELECT first_run FROM billing_run) OR EXISTS (SELECT 1 FROM billing_days))  -- else skip the pass
    GROUP BY b.user_key, b.spent_date
    HAVING sum(b.day_hours) > 24
        OR bool_or(b.reason = 'over_24h_day')
),
target AS (
    SELECT b.source, b.source_id,
           CASE WHEN t.total > 24 AND b.base_state = 'billable' THEN 'exception' ELSE b.base_state END AS state,
           CASE WHEN t.total > 24 AND b.base_state = 'billable' THEN 'over_24h_day' ELSE b.base_reason END AS reason
    FROM totals t
    JOIN closeout_data.billing_entries b ON b.user_key = t.user_key AND b.spent_date = t.spent_date
),
changed AS (
    UPDATE closeout_data.billing_entries b
    SET state = t.state, reason = t.reason
    FROM target t
    WHERE b.source = t.source AND b.source_id = t.source_id
      AND (b.state, b.reason) IS DISTINCT FROM (t.state, t.reason)
    RETURNING b.source, b.source_id
)
INSERT INTO billing_dirty (source, source_id, known)
SELECT c.source, c.source_id, true FROM changed c
WHERE NOT EXISTS (SELECT 1 FROM billing_dirty d WHERE d.source = c.source AND d.source_id = c.source_id);
