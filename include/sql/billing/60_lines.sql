-- The new line set of every invoice that changed. Lines are sums, so a touched line is its previous
-- version plus the rows added minus the rows closed (no re-reading of the line's other entries);
-- untouched lines carry over; lines left without entries disappear; lines are renumbered.
-- A line's amount is its quantity times its rate, rounded once, half-up, to the minor unit;
-- rounding_minor is that amount minus the sum of its entries' own amounts.
CREATE TEMP TABLE billing_line_deltas ON COMMIT DROP AS
SELECT x.invoice_id, x.line_key, sum(x.quantity) AS quantity, sum(x.amount_minor) AS entries_minor,
       sum(x.n)::integer AS entry_count, min(x.unit_rate) AS unit_rate,
       min(x.project_key) AS project_key, min(x.task_key) AS task_key, min(x.user_key) AS user_key,
       min(x.spent_date) AS spent_date, min(x.project_name) AS project_name, min(x.task_name) AS task_name,
       min(x.user_name) AS user_name, min(x.description) AS description,
       min(x.adjusts_invoice_id) AS adjusts_invoice_id, min(x.adjusts_line_key) AS adjusts_line_key
FROM (
    SELECT a.invoice_id, a.line_key, a.quantity, a.amount_minor, 1 AS n, a.unit_rate, a.project_key, a.task_key,
           a.user_key, a.spent_date, a.project_name, a.task_name, a.user_name, a.description,
           a.adjusts_invoice_id, a.adjusts_line_key
    FROM billing_to_add a
    UNION ALL
    SELECT c.invoice_id, c.line_key, -c.quantity, -c.amount_minor, -1, c.unit_rate, NULL, NULL, NULL, NULL,
           NULL, NULL, NULL, NULL, NULL, NULL
    FROM billing_to_close c
) x
GROUP BY x.invoice_id, x.line_key;

CREATE TEMP TABLE billing_new_lines ON COMMIT DROP AS
WITH touched AS (
    SELECT d.invoice_id, bb.version, d.line_key,
           coalesce(p.quantity, 0) + d.quantity AS quantity,
           coalesce(p.unit_rate, d.unit_rate) AS unit_rate,
           coalesce(p.amount_minor - p.rounding_minor, 0) + d.entries_minor AS entries_minor,
           coalesce(p.entry_count, 0) + d.entry_count AS entry_count,
           p.description AS previous_description, d.description AS new_description,
           coalesce(p.project_key, d.project_key) AS project_key, coalesce(p.task_key, d.task_key) AS task_key,
           coalesce(p.user_key, d.user_key) AS user_key, coalesce(p.spent_date, d.spent_date) AS spent_date,
           d.project_name, d.task_name, d.user_name,
           coalesce(d.adjusts_invoice_id, p.adjusts_invoice_id) AS adjusts_invoice_id,
           coalesce(d.adjusts_line_key, p.adjusts_line_key) AS adjusts_line_key,
           p.line_key IS NOT NULL AS existed
    FROM billing_line_deltas d
    JOIN billing_bumped bb ON bb.invoice_id = d.invoice_id
    LEFT JOIN closeout_data.invoice_lines p
           ON p.invoice_id = d.invoice_id AND p.version = bb.version - 1 AND p.line_key = d.line_key
)
SELECT t.invoice_id, t.version, t.line_key,
       CASE split_part(t.line_key, '|', 1) WHEN 'time' THEN 'time' WHEN 'adj' THEN 'adjustment' ELSE 'credit' END AS kind,
       CASE WHEN t.line_key NOT LIKE 'time|%' THEN coalesce(t.new_description, t.previous_description, 'Adjustment')
            WHEN t.existed THEN t.previous_description
            ELSE CASE split_part(t.line_key, '|', 2)
                     WHEN 'pt' THEN coalesce(t.project_name, t.project_key)
                                    || coalesce(' / ' || coalesce(t.task_name, t.task_key), '')
                     WHEN 'p' THEN coalesce(t.project_name, t.project_key)
                     WHEN 'u' THEN coalesce(t.user_name, t.user_key)
                     WHEN 'd' THEN 'Time on ' || t.spent_date
                     ELSE t.spent_date || ' ' || coalesce(t.user_name, t.user_key) || ': '
                          || coalesce(t.project_name, t.project_key)
                          || coalesce(' / ' || coalesce(t.task_name, t.task_key), '') END
       END AS description,
       t.quantity, t.unit_rate,
       round(t.quantity * t.unit_rate * (10::numeric ^ cur.exponent))::bigint AS amount_minor,
       round(t.quantity * t.unit_rate * (10::numeric ^ cur.exponent))::bigint - t.entries_minor AS rounding_minor,
       t.entry_count,
       CASE WHEN split_part(t.line_key, '|', 2) IN ('pt', 'p', 'e') OR t.line_key NOT LIKE 'time|%'
            THEN t.project_key END AS project_key,
       CASE WHEN split_part(t.line_key, '|', 2) IN ('pt', 'e') OR t.line_key NOT LIKE 'time|%'
            THEN t.task_key END AS task_key,
       CASE WHEN split_part(t.line_key, '|', 2) IN ('u', 'e') OR t.line_key NOT LIKE 'time|%'
            THEN t.user_key END AS user_key,
       CASE WHEN split_part(t.line_key, '|', 2) IN ('d', 'e') OR t.line_key NOT LIKE 'time|%'
            THEN t.spent_date END AS spent_date,
       t.adjusts_invoice_id, t.adjusts_line_key
FROM touched t
JOIN closeout_data.invoices i ON i.invoice_id = t.invoice_id
JOIN closeout_data.currencies cur ON cur.code = i.currency
WHERE t.entry_count > 0
UNION ALL
SELECT l.invoice_id, bb.version, l.line_key, l.kind, l.description, l.quantity, l.unit_rate, l.amount_minor,
       l.rounding_minor, l.entry_count, l.project_key, l.task_key, l.user_key, l.spent_date,
       l.adjusts_invoice_id, l.adjusts_line_key
FROM billing_bumped bb
JOIN closeout_data.invoice_lines l ON l.invoice_id = bb.invoice_id AND l.version = bb.version - 1
WHERE NOT EXISTS (SELECT 1 FROM billing_line_deltas d
                  WHERE d.invoice_id = l.invoice_id AND d.line_key = l.line_key);

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
