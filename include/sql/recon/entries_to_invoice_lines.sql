-- Invariants 1-2: time entries -> invoice lines -> invoice totals. One row per difference; empty when they hold.
-- (a) an entry's billed amount (all its line entries on invoices not voided, original and adjustment lines)
--     equals its current amount (0 once deleted or no longer billable); entries never billed are not drafted
--     yet and not judged here. Entry versions seen after the ledger cut-off are left to the next run.
-- (b) a line's amount is the sum of its entries' amounts plus the rounding it shows;
-- (c) an invoice's total is the sum of its lines.
-- The rows are those of the contract views closeout.invoice_line_entries and closeout.invoice_lines (current
-- line entries of current lines), read from their tables once, by line key: the views number every invoice's
-- lines (a sort per invoice), which only a difference row needs, so only difference rows are numbered.
WITH current_line_entries AS NOT MATERIALIZED (
    SELECT e.invoice_id, e.line_key, e.source, e.source_id, e.amount_minor
    FROM closeout_data.invoice_line_entries e
    WHERE e.valid_to IS NULL
      AND (e.invoice_id, e.line_key) IN (SELECT invoice_id, line_key FROM closeout_data.invoice_lines WHERE valid_to IS NULL)
), billed AS (
    SELECT e.source, e.source_id, sum(e.amount_minor) AS billed_minor
    FROM current_line_entries e
    JOIN closeout_data.invoices i ON i.invoice_id = e.invoice_id
    WHERE i.status <> 'void'
    GROUP BY e.source, e.source_id
), entries AS (
    SELECT b.source, b.source_id, b.billed_minor, t.currency,
           CASE WHEN t.deleted_at IS NULL AND t.billable THEN t.amount_minor ELSE 0 END AS current_minor
    FROM billed b
    JOIN closeout.time_entries t ON t.source = b.source AND t.source_id = b.source_id
    WHERE t.seen_at <= {ledger_cutoff}
      AND ({period_start}::date IS NULL OR (t.spent_date >= {period_start}::date AND t.spent_date < {period_end}::date))
), line_entries AS (
    SELECT invoice_id, line_key, sum(amount_minor) AS entries_minor
    FROM current_line_entries GROUP BY invoice_id, line_key
), invoices AS (
    SELECT i.invoice_id, i.currency, i.total_minor
    FROM closeout_data.invoices i
    WHERE {period_start}::date IS NULL OR (i.period_start >= {period_start}::date AND i.period_start < {period_end}::date)
)
SELECT 'entry_billed' AS kind, e.currency, e.source || ':' || e.source_id AS item,
       e.billed_minor - e.current_minor AS difference_minor, true AS hard
FROM entries e WHERE e.billed_minor <> e.current_minor
UNION ALL
SELECT 'line_vs_entries', i.currency,
       l.invoice_id || '#' || (SELECT n.line_no FROM closeout_data.current_invoice_lines n
                               WHERE n.invoice_id = l.invoice_id AND n.line_key = l.line_key),
       l.amount_minor - (coalesce(le.entries_minor, 0) + l.rounding_minor), true
FROM closeout_data.invoice_lines l
JOIN invoices i ON i.invoice_id = l.invoice_id
LEFT JOIN line_entries le ON le.invoice_id = l.invoice_id AND le.line_key = l.line_key
WHERE l.valid_to IS NULL AND l.entry_count > 0 AND l.amount_minor <> coalesce(le.entries_minor, 0) + l.rounding_minor
UNION ALL
SELECT 'invoice_vs_lines', i.currency, i.invoice_id, i.total_minor - coalesce(s.lines_minor, 0), true
FROM invoices i
LEFT JOIN (SELECT invoice_id, sum(amount_minor) AS lines_minor FROM closeout_data.invoice_lines
           WHERE valid_to IS NULL GROUP BY invoice_id) s
       ON s.invoice_id = i.invoice_id
WHERE i.total_minor <> coalesce(s.lines_minor, 0)
