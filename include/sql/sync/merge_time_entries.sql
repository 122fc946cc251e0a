-- Merge one staged page into the version history, set-based. Contract keys are '<source>:<id>'.
-- A new version is written only when the entry is new, comes back after a deletion, or differs from
-- its current version in any captured field; re-reading an unchanged entry writes nothing. New
-- entries (the whole of a first sync) skip the comparison entirely. The stage holds one row per id
-- (the caller de-duplicates). amount_minor is hours x rate rounded once, half away from zero
-- (= half-up for these non-negative amounts), to the currency's minor unit.
-- Params: source, sync_run_id. Returns one row per version written.
WITH changed AS (
    SELECT s.*, h.version AS prev_version, h.deleted_at AS prev_deleted_at
    FROM stage_time_entries s
    -- LATERAL + LIMIT keeps this a primary-key probe per staged row: with a plain join the planner,
    -- misled by stale statistics mid-sync, hashed every head of the source on every page (O(n^2)).
    LEFT JOIN LATERAL (
        SELECT hh.source, hh.source_id, hh.version, hh.deleted_at
        FROM closeout_data.time_entry_heads hh
        WHERE hh.source = %(source)s AND hh.source_id = s.source_id
        LIMIT 1
    ) h ON true
    WHERE h.source_id IS NULL
       OR h.deleted_at IS NOT NULL
       -- one primary-key probe of the current version, only for entries we already hold
       OR NOT EXISTS (
           SELECT 1 FROM closeout_data.time_entry_versions v
           WHERE v.source = h.source AND v.source_id = h.source_id AND v.version = h.version
             AND (v.client_source_id, v.project_source_id, v.task_source_id, v.user_source_id, v.spent_date,
                  v.hours, v.rounded_hours, v.billable, v.approved, v.billed_in_source, v.source_invoice_ref,
                  v.is_locked, v.is_running, v.billable_rate, v.currency, v.notes, v.source_created_at,
                  v.source_updated_at)
                 IS NOT DISTINCT FROM
                 (s.client_source_id, s.project_source_id, s.task_source_id, s.user_source_id, s.spent_date,
                  s.hours, s.rounded_hours, s.billable, s.approved, s.billed_in_source, s.source_invoice_ref,
                  s.is_locked, s.is_running, s.billable_rate, s.currency, s.notes, s.source_created_at,
                  s.source_updated_at))
),
written AS (
    INSERT INTO closeout_data.time_entry_versions (
        source, source_id, version, sync_run_id, change,
        client_key, project_key, task_key, user_key,
        client_source_id, project_source_id, task_source_id, user_source_id,
        spent_date, hours, rounded_hours, billable_hours, billable, approved, billed_in_source,
        source_invoice_ref, is_locked, is_running, billable_rate, currency, amount_minor, notes,
        source_created_at, source_updated_at, deleted_at)
    SELECT %(source)s, c.source_id, coalesce(c.prev_version, 0) + 1, %(sync_run_id)s,
           CASE WHEN c.prev_version IS NULL THEN 'created'
                WHEN c.prev_deleted_at IS NOT NULL THEN 'restored'
                ELSE 'updated' END,
           %(source)s || ':' || c.client_source_id, %(source)s || ':' || c.project_source_id,
           %(source)s || ':' || c.task_source_id, %(source)s || ':' || c.user_source_id,
           c.client_source_id, c.project_source_id, c.task_source_id, c.user_source_id,
           c.spent_date, c.hours, c.rounded_hours,
           CASE WHEN c.billable THEN c.rounded_hours ELSE 0 END,
           c.billable, c.approved, c.billed_in_source, c.source_invoice_ref, c.is_locked, c.is_running,
           c.billable_rate, c.currency,
           CASE WHEN NOT c.billable THEN 0
                WHEN c.billable_rate IS NULL THEN NULL
                ELSE round(c.rounded_hours * c.billable_rate * (10::numeric ^ cur.exponent))::bigint END,
           c.notes, c.source_created_at, c.source_updated_at, NULL
    FROM changed c
    JOIN closeout_data.currencies cur ON cur.code = c.currency
    RETURNING source, source_id, version, spent_date
),
-- version 1 means no head yet: a plain INSERT is much cheaper than a speculative upsert
new_heads AS (
    INSERT INTO closeout_data.time_entry_heads (source, source_id, version, spent_date, deleted_at)
    SELECT w.source, w.source_id, w.version, w.spent_date, NULL FROM written w WHERE w.version = 1
    RETURNING source_id
),
moved_heads AS (
    UPDATE closeout_data.time_entry_heads h
    SET version = w.version, spent_date = w.spent_date, deleted_at = NULL
    FROM written w
    WHERE w.version > 1 AND h.source = w.source AND h.source_id = w.source_id
    RETURNING h.source_id
)
SELECT source_id FROM new_heads
UNION ALL
SELECT source_id FROM moved_heads
