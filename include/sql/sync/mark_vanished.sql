-- Entries in the sweep window that the tracker no longer lists get a 'deleted' version
-- (a copy of their last version with deleted_at set, billable hours and amount zero).
-- Params: source, sync_run_id, window_from, window_to (NULL: no upper bound). Returns the ids marked.
WITH vanished AS (
    SELECT h.source_id, h.version
    FROM closeout_data.time_entry_heads h
    WHERE h.source = %(source)s AND h.deleted_at IS NULL AND h.spent_date >= %(window_from)s
      AND (%(window_to)s::date IS NULL OR h.spent_date <= %(window_to)s::date)
      AND NOT EXISTS (SELECT 1 FROM closeout_data.sweep_seen s
                      WHERE s.sync_run_id = %(sync_run_id)s AND s.source_id = h.source_id)
),
written AS (
    INSERT INTO closeout_data.time_entry_versions (
        source, source_id, version, sync_run_id, change,
        client_key, project_key, task_key, user_key,
        client_source_id, project_source_id, task_source_id, user_source_id,
        spent_date, hours, rounded_hours, billable_hours, billable, approved, billed_in_source,
        source_invoice_ref, is_locked, is_running, billable_rate, currency, amount_minor, notes,
        source_created_at, source_updated_at, deleted_at)
    SELECT p.source, p.source_id, p.version + 1, %(sync_run_id)s, 'deleted',
           p.client_key, p.project_key, p.task_key, p.user_key,
           p.client_source_id, p.project_source_id, p.task_source_id, p.user_source_id,
           p.spent_date, p.hours, p.rounded_hours, 0, p.billable, p.approved, p.billed_in_source,
           p.source_invoice_ref, p.is_locked, p.is_running, p.billable_rate, p.currency,
           CASE WHEN p.amount_minor IS NULL THEN NULL ELSE 0 END, p.notes,
           p.source_created_at, p.source_updated_at, clock_timestamp()
    FROM vanished v
    JOIN closeout_data.time_entry_versions p
      ON p.source = %(source)s AND p.source_id = v.source_id AND p.version = v.version
    RETURNING source, source_id, version, deleted_at
)
UPDATE closeout_data.time_entry_heads h
SET version = w.version, deleted_at = w.deleted_at
FROM written w
WHERE h.source = w.source AND h.source_id = w.source_id
RETURNING h.source_id
