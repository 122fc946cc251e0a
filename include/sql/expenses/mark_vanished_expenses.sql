-- Expenses in the sweep window that the tracker no longer lists get a 'deleted' version
-- (a copy of their last version with deleted_at set and amount zero: nothing left to bill).
-- Params: source, sync_run_id, window_from, window_to (NULL: no upper bound). Returns the ids marked.
WITH vanished AS (
    SELECT h.source_id, h.version
    FROM closeout_data.expense_heads h
    WHERE h.source = %(source)s AND h.deleted_at IS NULL AND h.spent_date >= %(window_from)s
      AND (%(window_to)s::date IS NULL OR h.spent_date <= %(window_to)s::date)
      AND NOT EXISTS (SELECT 1 FROM closeout_data.expense_sweep_seen s
                      WHERE s.sync_run_id = %(sync_run_id)s AND s.source_id = h.source_id)
),
written AS (
    INSERT INTO closeout_data.expense_versions (
        source, source_id, version, sync_run_id, change,
        client_key, project_key, user_key, client_source_id, project_source_id, user_source_id,
        spent_date, category_source_id, category, unit_name, units, unit_price, total_cost,
        billable, approved, billed_in_source, source_invoice_ref, is_locked, locked_reason,
        currency, amount_minor, receipt_url, receipt_file_name, receipt_file_size, receipt_content_type,
        notes, source_created_at, source_updated_at, deleted_at)
    SELECT p.source, p.source_id, p.version + 1, %(sync_run_id)s, 'deleted',
           p.client_key, p.project_key, p.user_key, p.client_source_id, p.project_source_id, p.user_source_id,
           p.spent_date, p.category_source_id, p.category, p.unit_name, p.units, p.unit_price, p.total_cost,
           p.billable, p.approved, p.billed_in_source, p.source_invoice_ref, p.is_locked, p.locked_reason,
           p.currency, 0, p.receipt_url, p.receipt_file_name, p.receipt_file_size, p.receipt_content_type,
           p.notes, p.source_created_at, p.source_updated_at, clock_timestamp()
    FROM vanished v
    JOIN closeout_data.expense_versions p
      ON p.source = %(source)s AND p.source_id = v.source_id AND p.version = v.version
    RETURNING source, source_id, version, deleted_at
)
UPDATE closeout_data.expense_heads h
SET version = w.version, deleted_at = w.deleted_at
FROM written w
WHERE h.source = w.source AND h.source_id = w.source_id
RETURNING h.source_id
