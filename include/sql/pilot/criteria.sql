-- Rollback criteria for run %(run_id)s (compared on %(compared_on)s), cohort clients only; one row per client,
-- month and criterion breached (the currencies of a month together):
--   hard_mismatch             any hard difference (entry not on a line, line without entry, billed twice), when
--                             %(hard_mismatch)s
--   amount_tolerance          the net amount difference of a currency exceeds %(tolerance)s minor units
--   consecutive_failing_days  the client's month mismatched on each of the last %(days)s comparison days (the
--                             latest finished run of each day, this run for today)
WITH this_run AS (
    SELECT * FROM closeout_data.pilot_comparisons WHERE run_id = %(run_id)s AND cohort
), days AS (
    SELECT d.run_id, d.compared_on FROM (
        SELECT DISTINCT ON (r.compared_on) r.run_id, r.compared_on
        FROM closeout_data.pilot_comparison_runs r
        WHERE r.compared_on <= %(compared_on)s::date AND (r.finished_at IS NOT NULL OR r.run_id = %(run_id)s)
        ORDER BY r.compared_on DESC, (r.run_id = %(run_id)s) DESC, r.started_at DESC
    ) d
    ORDER BY d.compared_on DESC
    LIMIT %(days)s
)
SELECT client_key, period, 'hard_mismatch' AS criterion,
       sum(hard_mismatches) || ' hard difference(s)' AS observed, '0' AS threshold
FROM this_run
WHERE %(hard_mismatch)s AND hard_mismatches > 0
GROUP BY client_key, period
UNION ALL
SELECT client_key, period, 'amount_tolerance',
       string_agg(amount_difference_minor || ' ' || currency || ' minor units over ' || amount_differences
                  || ' entr' || CASE WHEN amount_differences = 1 THEN 'y' ELSE 'ies' END, '; ' ORDER BY currency),
       %(tolerance)s::text || ' minor units'
FROM this_run
WHERE abs(amount_difference_minor) > %(tolerance)s
GROUP BY client_key, period
UNION ALL
SELECT c.client_key, c.period, 'consecutive_failing_days',
       count(DISTINCT d.compared_on) || ' comparison days in a row with differences (since '
           || min(d.compared_on) || ')',
       %(days)s::text || ' days'
FROM days d
JOIN closeout_data.pilot_comparisons c ON c.run_id = d.run_id AND c.cohort AND c.status = 'mismatch'
WHERE EXISTS (SELECT FROM this_run t WHERE t.client_key = c.client_key AND t.period = c.period
                                       AND t.status = 'mismatch')
GROUP BY c.client_key, c.period
HAVING count(DISTINCT d.compared_on) >= %(days)s AND (SELECT count(*) FROM days) >= %(days)s
ORDER BY 1, 2, 3
