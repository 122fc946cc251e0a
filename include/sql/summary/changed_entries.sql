-- Weekly summary, changes since last summarised: per earlier week, the time entry versions seen after that
-- week's figures were last taken (its baseline): late entries (created), edits, deletions and restorations,
-- with the hours they carry now. Parameters: weeks, starts, ends, figures_at (parallel arrays, one per
-- earlier week that has a baseline).
SELECT b.week, v.change, count(*) AS versions, count(DISTINCT (v.source, v.source_id)) AS entries,
       coalesce(sum(v.hours), 0) AS hours
FROM unnest(%(weeks)s::text[], %(starts)s::date[], %(ends)s::date[], %(figures_at)s::timestamptz[])
     AS b(week, week_start, week_end, figures_at)
JOIN closeout.time_entry_versions v
  ON v.spent_date BETWEEN b.week_start AND b.week_end AND v.seen_at > b.figures_at
GROUP BY b.week, v.change
ORDER BY b.week, v.change;
