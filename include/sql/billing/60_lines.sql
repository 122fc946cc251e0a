-- The new line set of every invoice that changed: lines touched by the difference are summed again
-- from their current entries, the other lines carry over unchanged, and lines are renumbered.
-- A line's amount is its quantity times its rate, rounded once, half-up, to the minor unit.
CREATE TEMP TABLE billing_lines_touched ON COMMIT DROP AS
SELECT invoice_id, line_key FROM billing_to_close
UNION
SELECT invoice_id, line_key FROM billing_to_add;

CREATE TEMP TABLE billing_new_lines ON COMMIT DROP AS
WITH summed AS (
    SELECT e.invoice_id, e.line_key, sum(e.quantity) AS quantity, min(e.unit_rate) AS unit_rate,
           sum(e.amount_minor) AS entries_minor, count(*)::integer AS entry_count,
           min(b.project_key) AS project_key, min(b.task_key) AS task_key, min(b.user_key) AS user_key,
           min(b.spent_date) AS spent_date, min(b.project_name) AS project_name, min(b.task_name) AS task_name,
           min(b.user_name) AS user_name
    FROM billing_lines_touched t
    JOIN closeout_data.invoice_line_entries e
      ON e.invoice_id = t.invoice_id AND e.line_key = t.line_key AND e.valid_to IS NULL
    JOIN closeout_data.billing_entries b ON b.source = e.source AND b.source_id = e.source_id
    GROUP BY e.invoice_id, e.line_key
),
meta AS (
    SELECT DISTINCT ON (a.invoice_id, a.line_key) a.invoice_id, a.line_key, a.description,
           a.adjusts_invoice_id, a.adjusts_line_key
    FROM billing_desired a
    WHERE a.description IS NOT NULL
    ORDER BY a.invoice_id, a.line_key, a.description
)
SELECT s.invoice_id, bb.version, s.line_key,
       CASE split_part(s.line_key, '|', 1) WHEN 'time' THEN 'time' WHEN 'adj' THEN 'adjustment' ELSE 'credit' END AS kind,
       CASE WHEN s.line_key LIKE 'time|%' THEN
            CASE split_part(s.line_key, '|', 2)
                WHEN 'pt' THEN coalesce(s.project_name, s.project_key)
                               || coalesce(' / ' || coalesce(s.task_name, s.task_key), '')
                WHEN 'p' THEN coalesce(s.project_name, s.project_key)
                WHEN 'u' THEN coalesce(s.user_name, s.user_key)
                WHEN 'd' THEN 'Time on ' || s.spent_date
                ELSE s.spent_date || ' ' || coalesce(s.user_name, s.user_key) || ': '
                     || coalesce(s.project_name, s.project_key)
                     || coalesce(' / ' || coalesce(s.task_name, s.task_key), '') END
            ELSE coalesce(m.description, 'Adjustment') END AS description,
       s.quantity, s.unit_rate,
       round(s.quantity * s.unit_rate * (10::numeric ^ cur.exponent))::bigint AS amount_minor,
       round(s.quantity * s.unit_rate * (10::numeric ^ cur.exponent))::bigint - s.entries_minor AS rounding_minor,
       s.entry_count,
       CASE WHEN split_part(s.line_key, '|', 2) IN ('pt', 'p', 'e') OR s.line_key NOT LIKE 'time|%'
            THEN s.project_key END AS project_key,
       CASE WHEN split_part(s.line_key, '|', 2) IN ('pt', 'e') OR s.line_key NOT LIKE 'time|%'
            THEN s.task_key END AS task_key,
       CASE WHEN split_part(s.line_key, '|', 2) IN ('u', 'e') OR s.line_key NOT LIKE 'time|%'
            THEN s.user_key END AS user_key,
       CASE WHEN split_part(s.line_key, '|', 2) IN ('d', 'e') OR s.line_key NOT LIKE 'time|%'
            THEN s.spent_date END AS spent_date,
       coalesce(m.adjusts_invoice_id, prev.adjusts_invoice_id) AS adjusts_invoice_id,
       coalesce(m.adjusts_line_key, prev.adjusts_line_key) AS adjusts_line_key
FROM summed s
JOIN billing_bumped bb ON bb.invoice_id = s.invoice_id
JOIN closeout_data.invoices i ON i.invoice_id = s.invoice_id
JOIN closeout_data.currencies cur ON cur.code = i.currency
LEFT JOIN meta m ON m.invoice_id = s.invoice_id AND m.line_key = s.line_key
LEFT JOIN closeout_data.invoice_lines prev
       ON prev.invoice_id = s.invoice_id AND prev.version = bb.version - 1 AND prev.line_key = s.line_key
UNION ALL
SELECT l.invoice_id, bb.version, l.line_key, l.kind, l.description, l.quantity, l.unit_rate, l.amount_minor,
       l.rounding_minor, l.entry_count, l.project_key, l.task_key, l.user_key, l.spent_date,
       l.adjusts_invoice_id, l.adjusts_line_key
FROM billing_bumped bb
JOIN closeout_data.invoice_lines l ON l.invoice_id = bb.invoice_id AND l.version = bb.version - 1
WHERE NOT EXISTS (SELECT 1 FROM billing_lines_touched t
                  WHERE t.invoice_id = l.invoice_id AND t.line_key = l.line_key);

INSERT INTO closeout_data.invoice_lines (invoice_id, version, line_no, line_key, kind, description, quantity,
                                         unit_rate, amount_minor, rounding_minor, entry_count, project_key,
                                         task_key, user_key, spent_date, adjusts_invoice_id, adjusts_line_key)
SELECT n.invoice_id, n.version,
       row_number() OVER (PARTITION BY n.invoice_id
                          ORDER BY CASE n.kind WHEN 'time' THEN 0 WHEN 'adjustment' THEN 1 ELSE 2 END,
                                   n.description, n.line_key)::integer,
       n.line_key, n.kind, n.description, n.quantity, n.unit_rate, n.amount_minor, n.rounding_minor,
       n.entry_count, n.project_key, n.task_key, n.user_key, n.spent_date, n.adjusts_invoice_id, n.adjusts_line_key
FROM billing_new_lines n;

WITH totals AS (
    SELECT bb.invoice_id, bb.version, coalesce(sum(n.amount_minor), 0)::bigint AS total_minor,
           count(n.line_key)::integer AS line_count, coalesce(sum(n.entry_count), 0)::integer AS entry_count
    FROM billing_bumped bb
    LEFT JOIN billing_new_lines n ON n.invoice_id = bb.invoice_id
    GROUP BY bb.invoice_id, bb.version
),
updated AS (
    UPDATE closeout_data.invoices i
    SET total_minor = t.total_minor, line_count = t.line_count, entry_count = t.entry_count
    FROM totals t WHERE i.invoice_id = t.invoice_id
    RETURNING i.invoice_id
)
INSERT INTO closeout_data.invoice_versions (invoice_id, version, draft_run_id, total_minor, line_count, entry_count)
SELECT t.invoice_id, t.version, %(draft_run_id)s, t.total_minor, t.line_count, t.entry_count
FROM totals t;
