-- The pilot comparison per client, month and currency for run %(run_id)s (entries spent in [%(start)s, %(end)s)):
-- totals on both sides and the differences compare_items.sql recorded. cohort: the client is in the pilot cohort
-- for (part of) the month. Status: mismatch when any difference was recorded.
INSERT INTO closeout_data.pilot_comparisons (run_id, compared_on, client_key, period, currency, cohort,
    source_hours, source_minor, invoiced_hours, invoiced_minor, awaiting_approval, entries_not_invoiced,
    lines_without_entry, amount_differences, amount_difference_minor, tracker_compared, tracker_billed_hours,
    tracker_billed_minor, tracker_differences, tracker_difference_minor, hard_mismatches, status)
WITH billed AS (
    SELECT b.source, b.source_id, sum(b.amount_minor) AS billed_minor, sum(b.quantity) AS billed_hours
    FROM (
        SELECT e.source, e.source_id, e.amount_minor, e.quantity
        FROM closeout_data.invoice_line_entries e
        JOIN closeout_data.invoices i ON i.invoice_id = e.invoice_id
        WHERE e.valid_to IS NULL AND i.status <> 'void'
        UNION ALL
        SELECT c.source, c.source_id, c.amount_minor, c.quantity FROM closeout.credit_note_lines c WHERE c.billed
    ) b
    GROUP BY b.source, b.source_id
), sides AS (
    SELECT t.client_key, to_char(t.spent_date, 'YYYY-MM') AS period, coalesce(j.currency, t.currency) AS currency,
           sum(CASE WHEN t.deleted_at IS NULL AND j.state = 'billable' THEN coalesce(j.quantity, 0) ELSE 0 END)
               AS source_hours,
           sum(CASE WHEN t.deleted_at IS NULL AND j.state = 'billable' THEN coalesce(j.amount_minor, 0) ELSE 0 END)
               AS source_minor,
           sum(coalesce(b.billed_hours, 0)) AS invoiced_hours, sum(coalesce(b.billed_minor, 0)) AS invoiced_minor,
           count(*) FILTER (WHERE t.deleted_at IS NULL AND j.state = 'not_approved') AS awaiting_approval,
           bool_or(t.deleted_at IS NULL AND t.billed_in_source) AS tracker_compared,
           sum(CASE WHEN t.deleted_at IS NULL AND t.billed_in_source THEN t.billable_hours ELSE 0 END)
               AS tracker_billed_hours,
           sum(CASE WHEN t.deleted_at IS NULL AND t.billed_in_source THEN coalesce(t.amount_minor, 0) ELSE 0 END)
               AS tracker_billed_minor
    FROM closeout.time_entries t
    JOIN closeout_data.billing_entries j ON j.source = t.source AND j.source_id = t.source_id
                                        AND j.entry_version = t.version
    LEFT JOIN billed b ON b.source = t.source AND b.source_id = t.source_id
    WHERE t.spent_date >= %(start)s::date AND t.spent_date < %(end)s::date
    GROUP BY 1, 2, 3
), diffs AS (
    SELECT client_key, period, currency,
           count(*) FILTER (WHERE kind = 'entry_not_invoiced') AS entries_not_invoiced,
           count(*) FILTER (WHERE kind = 'line_without_entry') AS lines_without_entry,
           count(*) FILTER (WHERE kind = 'amount_difference') AS amount_differences,
           coalesce(sum(difference_minor) FILTER (WHERE kind = 'amount_difference'), 0) AS amount_difference_minor,
           count(*) FILTER (WHERE kind IN ('billed_twice', 'tracker_only', 'closeout_only')) AS tracker_differences,
           coalesce(sum(difference_minor) FILTER (WHERE kind IN ('tracker_only', 'closeout_only')), 0)
               AS tracker_difference_minor,
           count(*) FILTER (WHERE hard) AS hard_mismatches,
           count(*) AS differences
    FROM closeout_data.pilot_comparison_items
    WHERE run_id = %(run_id)s
    GROUP BY 1, 2, 3
)
SELECT %(run_id)s, %(compared_on)s::date, s.client_key, s.period, s.currency,
       EXISTS (SELECT FROM closeout_data.pilot_cohort c
               WHERE c.client_key = s.client_key
                 AND c.from_period < (to_date(s.period, 'YYYY-MM') + interval '1 month')::date),
       s.source_hours, s.source_minor, s.invoiced_hours, s.invoiced_minor, s.awaiting_approval,
       coalesce(d.entries_not_invoiced, 0), coalesce(d.lines_without_entry, 0), coalesce(d.amount_differences, 0),
       coalesce(d.amount_difference_minor, 0), s.tracker_compared, s.tracker_billed_hours, s.tracker_billed_minor,
       coalesce(d.tracker_differences, 0), coalesce(d.tracker_difference_minor, 0), coalesce(d.hard_mismatches, 0),
       CASE WHEN coalesce(d.differences, 0) > 0 THEN 'mismatch' ELSE 'match' END
FROM sides s
LEFT JOIN diffs d ON d.client_key = s.client_key AND d.period = s.period AND d.currency = s.currency
