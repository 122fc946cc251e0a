-- Weekly summary, changes since last summarised: per earlier week, the time entry and expense versions seen after
-- that week's figures were last taken (its baseline): late entries (created), edits, deletions and restorations,
-- with the hours they carry now (expenses: change prefixed 'expense_', hours 0). Parameters: weeks, starts, ends, figures_at (parallel arrays, one per
-- earlier week that has a baseline).
WITH b AS (
    SELECT * FROM unnest(%(weeks)s::text[], %(starts)s::date[], %(ends)s::date[], %(figures_at)s::timestamptz[])
         AS b(week, week_start, week_end, figures_at)
), seen AS (
    SELECT b.week, v.change, v.source, v.source_id, v.hours
    FROM b JOIN closeout.time_entry_versions v
      ON v.spent_date BETWEEN b.week_start AND b.week_end AND v.seen_at > b.figures_at
    UNION ALL
    SELECT b.week, 'expense_' || x.change, x.source, x.source_id, 0
    FROM b JOIN closeout.expense_versions x
      ON x.spent_date BETWEEN b.week_start AND b.week_end AND x.seen_at > b.figures_at
)
SELECT week, change, count(*) AS versions, count(DISTINCT (source, source_id)) AS entries,
       coalesce(sum(hours), 0) AS hours
FROM seen
GROUP BY week, change
ORDER BY week, change;
