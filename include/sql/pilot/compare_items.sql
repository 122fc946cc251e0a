-- The pilot comparison, per entry: the tracker's time entries (closeout.time_entries, current state) against the
-- invoice lines that bill them (current line entries on invoices not voided, and corrections after issue), and,
-- for a client and month the team still invoices from the tracker (any entry there marked billed in the tracker:
-- Harvest's is_billed / invoice, Clockify's invoiced flag), against the tracker's own billing. One row per
-- difference, for run %(run_id)s, entries spent in [%(start)s, %(end)s). Signed: closeout minus the source.
-- Only entries whose current version the drafting has judged (closeout_data.billing_entries at that version) are
-- compared: one synced after the last drafting run is left to the next comparison, never reported as missing.
--   entry_not_invoiced   hard  a live billable entry closeout judged billable (or could not bill: an exception,
--                              its reason in detail) that no line bills
--   line_without_entry   hard  lines bill an entry that is deleted or no longer billable (no adjustment yet)
--   billed_twice         hard  the tracker billed an entry closeout's lines bill too
--   amount_difference    soft  lines bill a billable entry for another amount than its current one
--   tracker_only         soft  the tracker billed an entry closeout would not bill (state in detail)
--   closeout_only        soft  closeout's lines bill an entry the tracker did not, in a month the tracker invoiced
INSERT INTO closeout_data.pilot_comparison_items (run_id, client_key, period, currency, kind, item, hard,
                                                  hours_difference, difference_minor, detail)
WITH billed AS (
    SELECT b.source, b.source_id, sum(b.amount_minor) AS billed_minor, sum(b.quantity) AS billed_hours,
           count(*) AS rows_billing
    FROM (
        SELECT e.source, e.source_id, e.amount_minor, e.quantity
        FROM closeout_data.invoice_line_entries e
        JOIN closeout_data.invoices i ON i.invoice_id = e.invoice_id
        WHERE e.valid_to IS NULL AND i.status <> 'void'
        UNION ALL
        SELECT c.source, c.source_id, c.amount_minor, c.quantity FROM closeout.credit_note_lines c WHERE c.billed
    ) b
    GROUP BY b.source, b.source_id
), entries AS MATERIALIZED (
    SELECT t.source, t.source_id, t.client_key, to_char(t.spent_date, 'YYYY-MM') AS period,
           coalesce(j.currency, t.currency) AS currency, t.deleted_at IS NULL AS live, j.state, j.reason,
           CASE WHEN t.deleted_at IS NULL AND j.state = 'billable' THEN coalesce(j.amount_minor, 0) ELSE 0 END
               AS expected_minor,
           CASE WHEN t.deleted_at IS NULL AND j.state = 'billable' THEN coalesce(j.quantity, 0) ELSE 0 END
               AS expected_hours,
           t.deleted_at IS NULL AND t.billed_in_source AS tracker_billed,
           coalesce(t.amount_minor, 0) AS tracker_minor, t.billable_hours AS tracker_hours, t.source_invoice_ref,
           coalesce(b.billed_minor, 0) AS billed_minor, coalesce(b.billed_hours, 0) AS billed_hours,
           coalesce(b.rows_billing, 0) AS rows_billing
    FROM closeout.time_entries t
    JOIN closeout_data.billing_entries j ON j.source = t.source AND j.source_id = t.source_id
                                        AND j.entry_version = t.version
    LEFT JOIN billed b ON b.source = t.source AND b.source_id = t.source_id
    WHERE t.spent_date >= %(start)s::date AND t.spent_date < %(end)s::date
), tracker_months AS (
    SELECT DISTINCT client_key, period FROM entries WHERE tracker_billed
)
SELECT %(run_id)s, e.client_key, e.period, e.currency, x.kind, e.source || ':' || e.source_id, x.hard,
       x.hours_difference, x.difference_minor, x.detail
FROM entries e
LEFT JOIN tracker_months m ON m.client_key = e.client_key AND m.period = e.period
CROSS JOIN LATERAL (VALUES
    ('entry_not_invoiced', true, e.live AND e.state IN ('billable', 'exception') AND e.rows_billing = 0
                                 AND NOT (e.state = 'billable' AND e.expected_minor = 0),
     -CASE WHEN e.state = 'billable' THEN e.expected_hours ELSE e.tracker_hours END,
     -CASE WHEN e.state = 'billable' THEN e.expected_minor ELSE e.tracker_minor END,
     CASE WHEN e.state = 'exception' THEN 'closeout cannot bill it: ' || coalesce(e.reason, 'exception') END),
    ('line_without_entry', true, e.billed_minor <> 0 AND (NOT e.live OR e.state NOT IN ('billable', 'billed_in_source')),
     -e.billed_hours, e.billed_minor,
     CASE WHEN NOT e.live THEN 'entry deleted in the tracker' ELSE 'entry now ' || e.state END),
    ('billed_twice', true, e.billed_minor <> 0 AND e.tracker_billed,
     e.billed_hours, e.billed_minor, 'also billed in the tracker: ' || coalesce(e.source_invoice_ref, '?')),
    ('amount_difference', false, e.live AND e.state = 'billable' AND e.rows_billing > 0
                                 AND e.billed_minor <> e.expected_minor,
     e.billed_hours - e.expected_hours, e.billed_minor - e.expected_minor, NULL),
    ('tracker_only', false, e.tracker_billed AND e.billed_minor = 0 AND e.state NOT IN ('billed_in_source', 'billable'),
     -e.tracker_hours, -e.tracker_minor,
     'tracker invoice ' || coalesce(e.source_invoice_ref, '?') || '; closeout: ' || e.state
         || coalesce(' (' || e.reason || ')', '')),
    ('closeout_only', false, m.client_key IS NOT NULL AND NOT e.tracker_billed AND e.billed_minor <> 0 AND e.live,
     e.billed_hours, e.billed_minor, 'the tracker invoiced this month without it')
) AS x (kind, hard, differs, hours_difference, difference_minor, detail)
WHERE x.differs
