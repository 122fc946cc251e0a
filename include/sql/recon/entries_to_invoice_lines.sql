-- Invariants 1-2: time entries -> invoice lines -> invoice totals. One row per difference; empty when they hold.
-- (a) an entry's billed amount (all its line entries on invoices not voided, original and adjustment lines,
--     and its rows on corrections not voided: closeout.credit_note_lines) equals its current amount (0 once
--     deleted or no longer billable); entries never billed are not drafted yet and not judged here. Entry
--     versions seen after the ledger cut-off are left to the next run.
-- (b) a line's amount is the sum of its entries' amounts plus the rounding it shows;
-- (c) an invoice's total is the sum of its lines.
-- The rows judged are those of the contract views closeout.invoice_line_entries and closeout.invoice_lines (the
-- current line entries of current lines), read from their tables by line key: the views number every invoice's
-- lines (a sort per invoice), which only a difference row needs. At month end (a million line entries) the
-- order of work matters: the line entries are summed per line once, and that sum meets the lines in one join
-- which yields both the lines that differ and any line entries whose line is no longer current (normally none;
-- as in the views, those bill nothing); each entry's line entries are then summed alongside its current version.
WITH line_sums AS (
    SELECT invoice_id, line_key, sum(amount_minor) AS entries_minor
    FROM closeout_data.invoice_line_entries
    WHERE valid_to IS NULL
    GROUP BY invoice_id, line_key
), lines AS MATERIALIZED (  -- normally empty: lines that differ from their entries, entries without their line
    SELECT coalesce(l.invoice_id, s.invoice_id) AS invoice_id, coalesce(l.line_key, s.line_key) AS line_key,
           l.amount_minor - (coalesce(s.entries_minor, 0) + l.rounding_minor) AS difference_minor,
           l.invoice_id IS NULL AS without_line
    -- expense lines (line keys 'x...') bill expenses, not entries: expenses_to_invoice_lines checks them
    FROM (SELECT * FROM closeout_data.invoice_lines WHERE valid_to IS NULL AND left(line_key, 1) <> 'x') l
    FULL JOIN line_sums s ON s.invoice_id = l.invoice_id AND s.line_key = l.line_key
    WHERE l.invoice_id IS NULL
       OR (l.entry_count > 0 AND l.amount_minor <> coalesce(s.entries_minor, 0) + l.rounding_minor)
), entries AS (
    SELECT e.source, e.source_id, t.currency, sum(e.amount_minor) AS billed_minor,
           CASE WHEN t.deleted_at IS NULL AND t.billable THEN t.amount_minor ELSE 0 END AS current_minor
    FROM (
        SELECT e.source, e.source_id, e.amount_minor
        FROM closeout_data.invoice_line_entries e
        JOIN closeout_data.invoices i ON i.invoice_id = e.invoice_id
        WHERE e.valid_to IS NULL AND i.status <> 'void'
          -- the first test is answered once for the whole run, so the usual case pays nothing per row
          AND (NOT EXISTS (SELECT FROM lines o WHERE o.without_line)
               OR NOT EXISTS (SELECT FROM lines o
                              WHERE o.without_line AND o.invoice_id = e.invoice_id AND o.line_key = e.line_key))
        UNION ALL
        -- what corrections after issue (credit notes, customer balance credits) took over from drafts
        SELECT c.source, c.source_id, c.amount_minor FROM closeout.credit_note_lines c WHERE c.billed
    ) e
    JOIN closeout.time_entries t ON t.source = e.source AND t.source_id = e.source_id
    WHERE t.seen_at <= {ledger_cutoff}
      AND ({period_start}::date IS NULL OR (t.spent_date >= {period_start}::date AND t.spent_date < {period_end}::date))
    GROUP BY e.source, e.source_id, t.currency, 5
), invoices AS (
    SELECT i.invoice_id, i.currency, i.total_minor,
           CASE WHEN i.tax_inclusive THEN 0 ELSE i.tax_minor END AS exclusive_tax_minor
    FROM closeout_data.invoices i
    WHERE {period_start}::date IS NULL OR (i.period_start >= {period_start}::date AND i.period_start < {period_end}::date)
)
SELECT 'entry_billed' AS kind, e.currency, e.source || ':' || e.source_id AS item,
       e.billed_minor - e.current_minor AS difference_minor, true AS hard
FROM entries e WHERE e.billed_minor <> e.current_minor
UNION ALL
SELECT 'line_vs_entries', i.currency,
       d.invoice_id || '#' || (SELECT n.line_no FROM closeout_data.current_invoice_lines n
                               WHERE n.invoice_id = d.invoice_id AND n.line_key = d.line_key),
       d.difference_minor, true
FROM lines d
JOIN invoices i ON i.invoice_id = d.invoice_id
WHERE NOT d.without_line
UNION ALL
-- (an invoice's total is its lines plus its tax when the rate is exclusive: docs/invoice-tax.md)
SELECT 'invoice_vs_lines', i.currency, i.invoice_id, i.total_minor - coalesce(s.lines_minor, 0) - i.exclusive_tax_minor,
       true
FROM invoices i
LEFT JOIN (SELECT invoice_id, sum(amount_minor) AS lines_minor FROM closeout_data.invoice_lines
           WHERE valid_to IS NULL GROUP BY invoice_id) s
       ON s.invoice_id = i.invoice_id
WHERE i.total_minor <> coalesce(s.lines_minor, 0) + i.exclusive_tax_minor
