-- Step 11, write-back: the trackers show as billed exactly what closeout billed (issue 16 item 4). Compares the
-- tracker's own billed flag, as last captured by a sync (time_entry_versions / expense_versions: Harvest is_billed
-- and invoice, Clockify's invoicingState), with what closeout billed on invoices issued in Stripe (open or paid)
-- and what the write-back recorded (closeout_data.tracker_writebacks). Harvest and Clockify; Toggl has no flag.
--
-- Rows, item "<source> <time|expense> <id>" (+ detail):
--   tracker_only     hard: the tracker shows it billed, closeout did not bill it (nothing, or nothing net, on an
--                    issued invoice): someone invoiced it in the tracker; difference = its amount
--   not_in_tracker   hard: closeout billed it, the write-back of its invoice is done, a sync captured the item
--                    after that, and the tracker does not show it billed (no gap recorded): difference = -billed
--   other_invoice    hard (Harvest): closeout billed it and mirrored the invoice, but Harvest shows it billed on
--                    another Harvest invoice: difference 0
--   gap              soft, difference 0: closeout billed it and recorded why the tracker could not be told
--                    (tracker_writebacks kind 'gap': Harvest's import would have billed more): reported, not failing
-- Items captured before their write-back completed are not judged yet (the next sync brings the flag).
WITH issued AS (
    SELECT i.invoice_id, i.currency FROM closeout_data.invoices i
    WHERE i.status IN ('open', 'paid') AND i.stripe_invoice_id IS NOT NULL
), billed_rows AS (
    SELECT e.source, 'time'::text AS item_kind, e.source_id, e.invoice_id, e.amount_minor
    FROM closeout_data.invoice_line_entries e JOIN issued USING (invoice_id)
    WHERE e.valid_to IS NULL AND e.source IN ('harvest', 'clockify')
    UNION ALL
    SELECT x.source, 'expense', x.source_id, x.invoice_id, x.amount_minor
    FROM closeout.invoice_line_expenses x JOIN issued USING (invoice_id)
    WHERE x.source IN ('harvest', 'clockify')
), ours AS (
    SELECT source, item_kind, source_id, sum(amount_minor) AS billed_minor
    FROM billed_rows GROUP BY 1, 2, 3
), done AS (  -- invoices whose write-back to the tracker is done, with what marks their items there
    SELECT w.source, w.invoice_id, w.completed_at, w.writeback_key, w.external_id
    FROM closeout_data.tracker_writebacks w
    WHERE w.status = 'done' AND ((w.source = 'harvest' AND w.object_kind = 'invoice')
                                 OR (w.source = 'clockify' AND w.object_kind = 'invoiced_flag'))
), theirs AS (
    SELECT v.source, 'time'::text AS item_kind, v.source_id, v.currency, v.amount_minor, v.billed_in_source,
           v.source_invoice_ref, v.seen_at, v.spent_date
    FROM closeout_data.time_entry_heads h
    JOIN closeout_data.time_entry_versions v ON v.source = h.source AND v.source_id = h.source_id AND v.version = h.version
    WHERE h.source IN ('harvest', 'clockify') AND h.deleted_at IS NULL
    UNION ALL
    SELECT v.source, 'expense', v.source_id, v.currency, v.amount_minor, v.billed_in_source, v.source_invoice_ref,
           v.seen_at, v.spent_date
    FROM closeout_data.expense_heads h
    JOIN closeout_data.expense_versions v ON v.source = h.source AND v.source_id = h.source_id AND v.version = h.version
    WHERE h.source IN ('harvest', 'clockify') AND h.deleted_at IS NULL
), judged AS (
    SELECT t.*, coalesce(o.billed_minor, 0) AS billed_minor,
           t.source || ' ' || t.item_kind || ' ' || t.source_id AS item,
           EXISTS (SELECT 1 FROM billed_rows b JOIN done d ON d.source = b.source AND d.invoice_id = b.invoice_id
                   WHERE b.source = t.source AND b.item_kind = t.item_kind AND b.source_id = t.source_id
                     AND b.amount_minor > 0 AND d.completed_at < t.seen_at) AS written_back,
           EXISTS (SELECT 1 FROM billed_rows b JOIN done d ON d.source = b.source AND d.invoice_id = b.invoice_id
                   WHERE b.source = t.source AND b.item_kind = t.item_kind AND b.source_id = t.source_id
                     AND t.source_invoice_ref IN (d.writeback_key, d.external_id)) AS on_our_invoice,
           (SELECT min(g.invoice_id) FROM closeout_data.tracker_writebacks g
            WHERE g.source = t.source AND g.object_kind = 'gap' AND g.status = 'gap'
              AND g.request ->> 'item_kind' = t.item_kind AND g.request ->> 'source_id' = t.source_id) AS gap_invoice
    FROM theirs t
    LEFT JOIN ours o ON o.source = t.source AND o.item_kind = t.item_kind AND o.source_id = t.source_id
    WHERE ({period_start}::date IS NULL
           OR (t.spent_date >= {period_start}::date AND t.spent_date < {period_end}::date))
      -- only trackers closeout writes back to (a tracker never told anything is not expected to agree)
      AND EXISTS (SELECT 1 FROM done d WHERE d.source = t.source)
)
SELECT 'tracker_only' AS kind, j.currency, j.item || ' (tracker invoice ' || coalesce(j.source_invoice_ref, '?') || ')'
       AS item, coalesce(j.amount_minor, 0) AS difference_minor, true AS hard
FROM judged j WHERE j.billed_in_source AND j.billed_minor <= 0
UNION ALL
SELECT 'not_in_tracker', j.currency, j.item, -j.billed_minor, true
FROM judged j WHERE j.billed_minor > 0 AND j.written_back AND NOT j.billed_in_source AND j.gap_invoice IS NULL
UNION ALL
SELECT 'other_invoice', j.currency, j.item || ' (billed on Harvest invoice ' || j.source_invoice_ref || ')', 0, true
FROM judged j
WHERE j.source = 'harvest' AND j.billed_minor > 0 AND j.written_back AND j.billed_in_source AND NOT j.on_our_invoice
  AND j.gap_invoice IS NULL
UNION ALL
SELECT 'gap', j.currency, j.item || ' (recorded gap on ' || j.gap_invoice || ')', 0, false
FROM judged j WHERE j.billed_minor > 0 AND NOT j.billed_in_source AND j.gap_invoice IS NOT NULL
