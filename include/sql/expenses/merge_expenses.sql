-- Merge one staged page of expenses into their version history, set-based (as merge_time_entries).
-- A new version is written only when the expense is new, comes back after a deletion, or differs from
-- its current version in any captured field; re-reading an unchanged expense writes nothing.
-- amount_minor is the tracker's total rounded once, half away from zero, to the currency's minor unit.
-- Params: source, sync_run_id. Returns one row per version written.
WITH changed AS (
    SELECT s.*, h.version AS prev_version, h.deleted_at AS prev_deleted_at
    FROM stage_expenses s
    -- LATERAL + LIMIT keeps this a primary-key probe per staged row whatever the statistics say mid-sync
    -- (a plain join can be planned as a hash of every head of the source on every page)
    LEFT JOIN LATERAL (
        SELECT hh.source, hh.source_id, hh.version, hh.deleted_at
        FROM closeout_data.expense_heads hh
        WHERE hh.source = %(source)s AND hh.source_id = s.source_id
        LIMIT 1
    ) h ON true
    WHERE h.source_id IS NULL
       OR h.deleted_at IS NOT NULL
       OR NOT EXISTS (
           SELECT 1 FROM closeout_data.expense_versions v
           WHERE v.source = h.source AND v.source_id = h.source_id AND v.version = h.version
             AND (v.client_source_id, v.project_source_id, v.user_source_id, v.spent_date, v.category_source_id,
                  v.category, v.unit_name, v.units, v.unit_price, v.total_cost, v.billable, v.approved,
                  v.billed_in_source, v.source_invoice_ref, v.is_locked, v.locked_reason, v.currency,
                  v.receipt_url, v.receipt_file_name, v.receipt_file_size, v.receipt_content_type, v.notes,
                  v.source_created_at, v.source_updated_at)
                 IS NOT DISTINCT FROM
                 (s.client_source_id, s.project_source_id, s.user_source_id, s.spent_date, s.category_source_id,
                  s.category, s.unit_name, s.units, s.unit_price, s.total_cost, s.billable, s.approved,
                  s.billed_in_source, s.source_invoice_ref, s.is_locked, s.locked_reason, s.currency,
                  s.receipt_url, s.receipt_file_name, s.receipt_file_size, s.receipt_content_type, s.notes,
                  s.source_created_at, s.source_updated_at))
),
written AS (
    INSERT INTO closeout_data.expense_versions (
        source, source_id, version, sync_run_id, change,
        client_key, project_key, user_key, client_source_id, project_source_id, user_source_id,
        spent_date, category_source_id, category, unit_name, units, unit_price, total_cost,
        billable, approved, billed_in_source, source_invoice_ref, is_locked, locked_reason,
        currency, amount_minor, receipt_url, receipt_file_name, receipt_file_size, receipt_content_type,
        notes, source_created_at, source_updated_at, deleted_at)
    SELECT %(source)s, c.source_id, coalesce(c.prev_version, 0) + 1, %(sync_run_id)s,
           CASE WHEN c.prev_version IS NULL THEN 'created'
                WHEN c.prev_deleted_at IS NOT NULL THEN 'restored'
                ELSE 'updated' END,
           %(source)s || ':' || c.client_source_id, %(source)s || ':' || c.project_source_id,
           %(source)s || ':' || c.user_source_id,
           c.client_source_id, c.project_source_id, c.user_source_id,
           c.spent_date, c.category_source_id, c.category, c.unit_name, c.units, c.unit_price, c.total_cost,
           c.billable, c.approved, c.billed_in_source, c.source_invoice_ref, c.is_locked, c.locked_reason,
           c.currency, round(c.total_cost * (10::numeric ^ cur.exponent))::bigint,
           c.receipt_url, c.receipt_file_name, c.receipt_file_size, c.receipt_content_type,
           c.notes, c.source_created_at, c.source_updated_at, NULL
    FROM changed c
    JOIN closeout_data.currencies cur ON cur.code = c.currency
    RETURNING source, source_id, version, spent_date
)
INSERT INTO closeout_data.expense_heads AS h (source, source_id, version, spent_date, deleted_at)
SELECT w.source, w.source_id, w.version, w.spent_date, NULL FROM written w
ON CONFLICT (source, source_id) DO UPDATE
    SET version = EXCLUDED.version, spent_date = EXCLUDED.spent_date, deleted_at = NULL
RETURNING h.source_id
