-- Payroll-ready hours: per person, day, client and project, approved time only, for one ISO week.
-- Parameters: week_start, week_end.
SELECT t.user_key, t.spent_date, t.client_key, t.project_key,
       sum(t.hours) AS hours,
       coalesce(sum(t.hours) FILTER (WHERE t.billable), 0) AS billable_hours,
       count(*) AS entries
FROM closeout.time_entries t
WHERE t.deleted_at IS NULL AND t.approved AND t.spent_date BETWEEN %(week_start)s AND %(week_end)s
GROUP BY 1, 2, 3, 4
ORDER BY 1, 2, 3, 4;
