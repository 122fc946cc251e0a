-- Record the corrections selected by 20_select and take their rows off the drafts, as one new version of
-- each draft (as a drafting run would): the rows and their lines are closed at it, the totals move by the
-- lines' amounts, and the version is recorded. Parameter: draft_run_id (the run recorded for this step).
INSERT INTO closeout_data.corrections (correction_id, kind, invoice_id, client_key, currency, seq, from_invoice_id,
                                       from_version, amount_minor, policy)
SELECT n.correction_id, n.kind, n.invoice_id, n.client_key, n.currency, n.seq, n.draft_id, n.from_version,
       n.amount_minor,
       CASE n.kind WHEN 'credit_note' THEN coalesce(bc.credit_note_policy, df.credit_note_policy)
                   ELSE 'customer_balance' END
FROM correction_new n
CROSS JOIN (SELECT credit_note_policy FROM closeout_data.billing_clients WHERE client_key = '*') df
LEFT JOIN closeout_data.billing_clients bc ON bc.client_key = n.client_key AND bc.client_key <> '*'
ORDER BY n.correction_id;

INSERT INTO closeout_data.correction_entries (correction_id, line_key, source, source_id, entry_version, quantity,
                                              unit_rate, amount_minor, from_valid_from)
SELECT m.correction_id, m.line_key, m.source, m.source_id, m.entry_version, m.quantity, m.unit_rate, m.amount_minor,
       m.valid_from
FROM correction_moves m
WHERE m.item = 'entry';

-- expense rows: same expense version, cost, markup and amount, linked to the correction (credit_note_expenses)
INSERT INTO closeout_data.correction_expenses (correction_id, line_key, source, source_id, expense_version,
                                               cost_minor, markup_percent, amount_minor, from_valid_from)
SELECT m.correction_id, m.line_key, m.source, m.source_id, m.entry_version, m.cost_minor, m.markup_percent,
       m.amount_minor, m.valid_from
FROM correction_moves m
WHERE m.item = 'expense';

UPDATE closeout_data.invoice_line_entries e
SET valid_to = n.from_version
FROM correction_moves m
JOIN correction_new n ON n.correction_id = m.correction_id
WHERE m.item = 'entry' AND e.source = m.source AND e.source_id = m.source_id AND e.valid_to IS NULL
  AND e.invoice_id = m.draft_id AND e.line_key = m.line_key AND e.valid_from = m.valid_from;

UPDATE closeout_data.invoice_line_expenses e
SET valid_to = n.from_version
FROM correction_moves m
JOIN correction_new n ON n.correction_id = m.correction_id
WHERE m.item = 'expense' AND e.source = m.source AND e.source_id = m.source_id AND e.valid_to IS NULL
  AND e.invoice_id = m.draft_id AND e.line_key = m.line_key AND e.valid_from = m.valid_from;

UPDATE closeout_data.invoice_lines l
SET valid_to = n.from_version
FROM correction_moves m
JOIN correction_new n ON n.correction_id = m.correction_id
WHERE l.invoice_id = m.draft_id AND l.line_key = m.line_key AND l.valid_to IS NULL;

WITH changes AS (
    -- a row split across invoices is one line leaving the draft; a taxed draft's lines take their tax with them
    -- (each line's tax as the draft computed it, closeout_data.line_tax_minor; docs/invoice-tax.md)
    SELECT x.draft_id, sum(x.line_amount_minor) AS amount_minor, count(*)::integer AS lines,
           sum(closeout_data.line_tax_minor(x.line_amount_minor, d.tax_rate_percent, d.tax_inclusive)) AS tax_minor
    FROM (SELECT DISTINCT m.draft_id, m.line_key, m.line_amount_minor FROM correction_moves m) x
    JOIN closeout_data.invoices d ON d.invoice_id = x.draft_id
    GROUP BY x.draft_id
),
updated AS (
    UPDATE closeout_data.invoices i
    SET version = i.version + 1,
        total_minor = i.total_minor - c.amount_minor - CASE WHEN i.tax_inclusive THEN 0 ELSE c.tax_minor END,
        tax_minor = i.tax_minor - c.tax_minor, line_count = i.line_count - c.lines,
        entry_count = i.entry_count - c.lines, updated_at = clock_timestamp()
    FROM changes c
    WHERE i.invoice_id = c.draft_id
    RETURNING i.invoice_id, i.version, i.total_minor, i.line_count, i.entry_count, i.tax_minor
)
INSERT INTO closeout_data.invoice_versions (invoice_id, version, draft_run_id, total_minor, line_count, entry_count,
                                            tax_minor)
SELECT u.invoice_id, u.version, %(draft_run_id)s, u.total_minor, u.line_count, u.entry_count, u.tax_minor
FROM updated u;
