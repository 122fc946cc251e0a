-- Weekly summary: time not yet approved, by person: entered in the week, and still open from any earlier day
-- (approval is what lets time be billed and paid; old unapproved time is what finance chases).
-- Parameters: week_start, week_end.
SELECT t.user_key,
       coalesce(sum(t.hours) FILTER (WHERE t.spent_date >= %(week_start)s), 0) AS week_hours,
       count(*) FILTER (WHERE t.spent_date >= %(week_start)s) AS week_entries,
       coalesce(sum(t.hours) FILTER (WHERE t.spent_date < %(week_start)s), 0) AS earlier_hours,
       count(*) FILTER (WHERE t.spent_date < %(week_start)s) AS earlier_entries,
       min(t.spent_date) AS oldest
FROM closeout.time_entries t
WHERE t.deleted_at IS NULL AND NOT t.approved AND t.spent_date <= %(week_end)s
GROUP BY t.user_key
ORDER BY t.user_key;
