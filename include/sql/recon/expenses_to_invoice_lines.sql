-- Invariant 10 (and 2 for expense lines): expenses -> invoice lines. One row per difference, empty when they hold.
-- (a) an expense's billed amount (its current rows in closeout_data.invoice_line_expenses on invoices not voided,
--     expense, adjustment and credit lines alike, plus its rows on corrections not voided) equals what it should
--     bill now: its cost plus the client's markup rounded once, half-up, in the currency's minor unit, and 0 once
--     deleted, not billable, not approved (for clients that require approval), without a client, or billed in the
--     tracker by someone else (the tracker's flag on an expense closeout bills on an issued invoice is closeout's
--     own write-back). An issued expense keeps the markup it was billed with while its cost is unchanged.
--     Expenses never billed are not drafted yet and not judged here, and versions seen after the ledger
--     cut-off are left to the next run. The item names the expense (source:source_id).
-- (b) an expense line's amount is the sum of its rows' amounts plus the rounding it shows, and its quantity
--     (the cost, in major units) times its rate (1 + markup) rounded once.
-- Invoice totals against their lines are entries_to_invoice_lines' (c): one cause, one failing check.
WITH frozen AS (
    SELECT e.source, e.source_id, i.client_key, i.currency, e.markup_percent, e.cost_minor, e.amount_minor
    FROM closeout_data.invoice_line_expenses e
    JOIN closeout_data.invoices i ON i.invoice_id = e.invoice_id AND i.status <> 'void'
     AND (i.status <> 'draft' OR i.period_end <= closeout_data.locked_through())
    WHERE e.valid_to IS NULL
    UNION ALL
    SELECT c.source, c.source_id, c.client_key, c.currency, c.markup_percent, c.cost_minor, c.amount_minor
    FROM closeout.credit_note_expenses c WHERE c.billed
), pinned AS (
    SELECT g.source, g.source_id, g.client_key, g.currency, sum(g.cost_minor) AS cost_minor,
           min(g.markup_percent) FILTER (WHERE g.amount_minor <> 0) AS markup_percent,
           count(*) FILTER (WHERE g.amount_minor <> 0) AS groups, bool_or(g.amount_minor <> 0) AS billed_by_us
    FROM (SELECT f.source, f.source_id, f.client_key, f.currency, f.markup_percent, sum(f.cost_minor) AS cost_minor,
                 sum(f.amount_minor) AS amount_minor
          FROM frozen f GROUP BY 1, 2, 3, 4, 5) g
    GROUP BY g.source, g.source_id, g.client_key, g.currency
), billed AS (
    SELECT b.source, b.source_id, sum(b.amount_minor) AS billed_minor
    FROM (
        SELECT e.source, e.source_id, e.amount_minor
        FROM closeout_data.invoice_line_expenses e
        JOIN closeout_data.invoices i ON i.invoice_id = e.invoice_id AND i.status <> 'void'
        WHERE e.valid_to IS NULL
        UNION ALL
        SELECT c.source, c.source_id, c.amount_minor FROM closeout.credit_note_expenses c WHERE c.billed
    ) b
    GROUP BY b.source, b.source_id
), expected AS (
    SELECT x.source, x.source_id, x.currency,
           CASE WHEN x.deleted_at IS NOT NULL OR NOT x.billable
                  OR (coalesce(bc.require_approval, df.require_approval) AND NOT x.approved)
                  OR x.client_key IS NULL
                  OR (x.billed_in_source AND NOT coalesce(pb.billed_by_us, false))
                THEN 0
                ELSE x.amount_minor
                     + round(x.amount_minor * CASE WHEN p.groups = 1 AND p.cost_minor = x.amount_minor
                                                   THEN p.markup_percent
                                                   ELSE coalesce(bc.expense_markup_percent, df.expense_markup_percent)
                                              END / 100)::bigint
           END AS expected_minor
    FROM closeout.expenses x
    CROSS JOIN (SELECT * FROM closeout_data.billing_clients WHERE client_key = '*') df
    LEFT JOIN closeout_data.billing_clients bc ON bc.client_key = x.client_key AND bc.client_key <> '*'
    LEFT JOIN (SELECT p.source, p.source_id, bool_or(p.billed_by_us) AS billed_by_us FROM pinned p GROUP BY 1, 2) pb
           ON pb.source = x.source AND pb.source_id = x.source_id
    LEFT JOIN pinned p ON p.source = x.source AND p.source_id = x.source_id AND p.client_key = x.client_key
                      AND p.currency = x.currency
    WHERE x.seen_at <= {ledger_cutoff}
      AND ({period_start}::date IS NULL OR (x.spent_date >= {period_start}::date AND x.spent_date < {period_end}::date))
      AND (x.source, x.source_id) IN (SELECT source, source_id FROM billed)
), lines AS (
    SELECT l.invoice_id, l.line_key, i.currency,
           l.amount_minor - (coalesce(s.rows_minor, 0) + l.rounding_minor) AS rows_difference_minor,
           l.amount_minor - round(l.quantity * l.unit_rate * (10::numeric ^ c.exponent))::bigint AS rate_difference_minor
    FROM closeout_data.invoice_lines l
    JOIN closeout_data.invoices i ON i.invoice_id = l.invoice_id
    JOIN closeout_data.currencies c ON c.code = i.currency
    LEFT JOIN (SELECT invoice_id, line_key, sum(amount_minor) AS rows_minor FROM closeout_data.invoice_line_expenses
               WHERE valid_to IS NULL GROUP BY invoice_id, line_key) s
           ON s.invoice_id = l.invoice_id AND s.line_key = l.line_key
    WHERE l.valid_to IS NULL AND left(l.line_key, 1) = 'x'
      AND ({period_start}::date IS NULL OR (i.period_start >= {period_start}::date AND i.period_start < {period_end}::date))
)
SELECT 'expense_billed' AS kind, e.currency, e.source || ':' || e.source_id AS item,
       b.billed_minor - e.expected_minor AS difference_minor, true AS hard
FROM expected e
JOIN billed b ON b.source = e.source AND b.source_id = e.source_id
WHERE b.billed_minor <> e.expected_minor
UNION ALL
SELECT 'expense_line_vs_expenses', d.currency,
       d.invoice_id || '#' || (SELECT n.line_no FROM closeout_data.current_invoice_lines n
                               WHERE n.invoice_id = d.invoice_id AND n.line_key = d.line_key)
           || ' (' || coalesce((SELECT string_agg(x.source || ':' || x.source_id, ', ' ORDER BY x.source_id)
                                FROM closeout_data.invoice_line_expenses x
                                WHERE x.invoice_id = d.invoice_id AND x.line_key = d.line_key
                                  AND x.valid_to IS NULL), 'no expenses') || ')',
       CASE WHEN d.rows_difference_minor <> 0 THEN d.rows_difference_minor ELSE d.rate_difference_minor END, true
FROM lines d
WHERE d.rows_difference_minor <> 0 OR d.rate_difference_minor <> 0
