-- Every version ever seen of every entry the pack's invoices bill (earlier and later versions too, so an edit or a
-- deletion after invoicing shows), with the tracker's ids and the rate inputs: the tracker's hours, rounding and
-- billable rate on the version, and the quantity and rate drafting used (the client's rounding and rate card).
-- `billed_here` marks the versions the pack's current lines bill; `sync_run_id` is the sync that saw the version
-- (its calls are in sync_requests).
WITH billed AS (
    SELECT DISTINCT source, source_id, version
    FROM closeout.invoice_line_entries
    WHERE invoice_id = ANY(%(invoice_ids)s::text[])
), entries AS (
    SELECT DISTINCT source, source_id FROM billed
)
SELECT v.source, v.source_id, v.version, v.change, v.sync_run_id, v.seen_at,
       v.client_key, v.project_key, v.task_key, v.user_key,
       t.client_source_id, t.project_source_id, t.task_source_id, t.user_source_id,
       v.spent_date, v.hours, v.rounded_hours, v.billable_hours, v.billable, v.approved, v.billed_in_source,
       v.billable_rate, v.currency, v.amount_minor,
       b.quantity AS drafted_quantity, b.rate AS drafted_rate, b.currency AS billing_currency,
       b.state AS drafting_state, b.entry_version AS drafting_judged_version,
       v.source_created_at, v.source_updated_at, v.deleted_at, v.notes,
       (x.version IS NOT NULL) AS billed_here
FROM entries n
JOIN closeout.time_entry_versions v ON v.source = n.source AND v.source_id = n.source_id
JOIN closeout_data.time_entry_versions t
  ON t.source = v.source AND t.source_id = v.source_id AND t.version = v.version
LEFT JOIN closeout_data.billing_entries b ON b.source = v.source AND b.source_id = v.source_id
LEFT JOIN billed x ON x.source = v.source AND x.source_id = v.source_id AND x.version = v.version
ORDER BY v.source, v.source_id, v.version;
