-- The new state of every line the changed rows touch. Lines are sums, so a touched line is its
-- current row plus the rows added minus the rows closed (no re-reading of the line's other entries).
-- Its current row is closed at the invoice's new version and the new state starts there (none when
-- the line is left without entries). Untouched lines carry over as they are: nothing is written for
-- them, and line numbers follow from the order of each version's lines (the views number them).
-- A line's amount is its quantity times its rate, rounded once, half-up, to the minor unit.
-- rounding_minor is that amount minus the sum of its entries' own amounts.
-- A line's own columns are one value per line (its key carries its rate and grouping; the rows closed
-- carry only their rate), so min() over the non-null ones picks that value: PostgreSQL 15 has no
-- any_value(), and min() costs the same here.
CREATE TEMP TABLE billing_line_deltas ON COMMIT DROP AS
WITH sums AS (
    SELECT x.invoice_id, x.line_key, sum(x.quantity) AS quantity, sum(x.amount_minor) AS entries_minor,
           sum(x.n)::integer AS entry_count, min(x.unit_rate) AS unit_rate,
           min(x.project_key) AS project_key, min(x.task_key) AS task_key,
           min(x.user_key) AS user_key, min(x.spent_date) AS spent_date,
           min(x.description) AS description, min(x.adjusts_invoice_id) AS adjusts_invoice_id,
           min(x.adjusts_line_key) AS adjusts_line_key
    FROM (
        SELECT a.invoice_id, a.line_key, a.quantity, a.amount_minor, 1 AS n, a.unit_rate, a.project_key,
               a.task_key, a.user_key, a.spent_date, a.description, a.adjusts_invoice_id, a.adjusts_line_key
        FROM billing_desired a
        UNION ALL
        SELECT c.invoice_id, c.line_key, -c.quantity, -c.amount_minor, -1, c.unit_rate, NULL, NULL, NULL, NULL,
               NULL, NULL, NULL
        FROM billing_to_close c
    ) x
    GROUP BY x.invoice_id, x.line_key
),
-- the minor unit of each currency, as a factor (computed once per currency, not per line)
scales AS MATERIALIZED (
    SELECT code, 10::numeric ^ exponent AS scale FROM closeout_data.currencies
)
SELECT s.*, bb.version, sc.scale
FROM sums s
JOIN billing_bumped bb ON bb.invoice_id = s.invoice_id
JOIN closeout_data.invoices i ON i.invoice_id = s.invoice_id
JOIN scales sc ON sc.code = i.currency;

CREATE TEMP TABLE billing_new_lines ON COMMIT DROP AS
WITH touched AS (
    SELECT d.invoice_id, d.version, d.scale, d.line_key,
           coalesce(p.quantity, 0) + d.quantity AS quantity,
           coalesce(p.unit_rate, d.unit_rate) AS unit_rate,
           coalesce(p.amount_minor - p.rounding_minor, 0) + d.entries_minor AS entries_minor,
           coalesce(p.entry_count, 0) + d.entry_count AS entry_count,
           p.description AS previous_description, d.description AS new_description,
           coalesce(p.project_key, d.project_key) AS project_key, coalesce(p.task_key, d.task_key) AS task_key,
           coalesce(p.user_key, d.user_key) AS user_key, coalesce(p.spent_date, d.spent_date) AS spent_date,
           coalesce(d.adjusts_invoice_id, p.adjusts_invoice_id) AS adjusts_invoice_id,
           coalesce(d.adjusts_line_key, p.adjusts_line_key) AS adjusts_line_key,
           p.valid_from AS previous_valid_from, coalesce(p.amount_minor, 0) AS previous_amount_minor,
           coalesce(p.entry_count, 0) AS previous_entry_count, p.line_key IS NOT NULL AS existed
    FROM billing_line_deltas d
    LEFT JOIN closeout_data.invoice_lines p
           ON p.invoice_id = d.invoice_id AND p.line_key = d.line_key AND p.valid_to IS NULL
)
SELECT t.invoice_id, t.version, t.line_key,
       CASE split_part(t.line_key, '|', 1) WHEN 'time' THEN 'time' WHEN 'adj' THEN 'adjustment' ELSE 'credit' END AS kind,
       CASE WHEN t.line_key NOT LIKE 'time|%' THEN coalesce(t.new_description, t.previous_description, 'Adjustment')
            WHEN t.existed THEN t.previous_description
            ELSE CASE split_part(t.line_key, '|', 2)
                     WHEN 'pt' THEN coalesce(pn.name, t.project_key)
                                    || coalesce(' / ' || coalesce(tn.name, t.task_key), '')
                     WHEN 'p' THEN coalesce(pn.name, t.project_key)
                     WHEN 'u' THEN coalesce(un.name, t.user_key)
                     WHEN 'd' THEN 'Time on ' || t.spent_date
                     ELSE t.spent_date || ' ' || coalesce(un.name, t.user_key) || ': '
                          || coalesce(pn.name, t.project_key)
                          || coalesce(' / ' || coalesce(tn.name, t.task_key), '') END
       END AS description,
       t.quantity, t.unit_rate,
       round(t.quantity * t.unit_rate * t.scale)::bigint AS amount_minor,
       round(t.quantity * t.unit_rate * t.scale)::bigint - t.entries_minor AS rounding_minor,
       t.entry_count, t.project_key, t.task_key, t.user_key, t.spent_date, t.adjusts_invoice_id, t.adjusts_line_key,
       t.existed, t.previous_valid_from, t.previous_amount_minor, t.previous_entry_count
FROM touched t
LEFT JOIN billing_names pn ON pn.kind = 'project' AND pn.key = t.project_key AND NOT t.existed
LEFT JOIN billing_names tn ON tn.kind = 'task' AND tn.key = t.task_key AND NOT t.existed
LEFT JOIN billing_names un ON un.kind = 'user' AND un.key = t.user_key AND NOT t.existed;

UPDATE closeout_data.invoice_lines l
SET valid_to = n.version
FROM billing_new_lines n
WHERE n.existed AND l.invoice_id = n.invoice_id AND l.line_key = n.line_key AND l.valid_from = n.previous_valid_from;

INSERT INTO closeout_data.invoice_lines (invoice_id, line_key, valid_from, kind, description, quantity, unit_rate,
                                         amount_minor, rounding_minor, entry_count, project_key, task_key, user_key,
                                         spent_date, adjusts_invoice_id, adjusts_line_key)
SELECT n.invoice_id, n.line_key, n.version, n.kind, n.description, n.quantity, n.unit_rate, n.amount_minor,
       n.rounding_minor, n.entry_count, n.project_key, n.task_key, n.user_key, n.spent_date, n.adjusts_invoice_id,
       n.adjusts_line_key
FROM billing_new_lines n
WHERE n.entry_count > 0;

-- The new version of every changed invoice: its totals move by what the touched lines changed, its
-- terms follow the client's current configuration, and the version is recorded with its totals.
WITH changes AS (
    SELECT bb.invoice_id, bb.version,
           coalesce(sum(CASE WHEN n.entry_count > 0 THEN n.amount_minor ELSE 0 END - n.previous_amount_minor), 0)
               AS total_minor,
           (count(*) FILTER (WHERE n.entry_count > 0) - count(*) FILTER (WHERE n.existed))::integer AS line_count,
           coalesce(sum(n.entry_count - n.previous_entry_count), 0)::integer AS entry_count
    FROM billing_bumped bb
    LEFT JOIN billing_new_lines n ON n.invoice_id = bb.invoice_id
    GROUP BY bb.invoice_id, bb.version
),
updated AS (
    UPDATE closeout_data.invoices i
    SET version = c.version, updated_at = clock_timestamp(),
        total_minor = i.total_minor + c.total_minor, line_count = i.line_count + c.line_count,
        entry_count = i.entry_count + c.entry_count,
        payment_terms_days = coalesce(bc.payment_terms_days, (SELECT payment_terms_days
                                                               FROM closeout_data.billing_clients
                                                               WHERE client_key = '*')),
        publish_policy = coalesce(bc.publish_policy, (SELECT publish_policy FROM closeout_data.billing_clients
                                                      WHERE client_key = '*'))
    FROM changes c
    LEFT JOIN closeout_data.billing_clients bc
           ON bc.client_key <> '*'
          AND bc.client_key = (SELECT client_key FROM closeout_data.invoices WHERE invoice_id = c.invoice_id)
    WHERE i.invoice_id = c.invoice_id
    RETURNING i.invoice_id, i.version, i.total_minor, i.line_count, i.entry_count
)
INSERT INTO closeout_data.invoice_versions (invoice_id, version, draft_run_id, total_minor, line_count, entry_count)
SELECT u.invoice_id, u.version, %(draft_run_id)s, u.total_minor, u.line_count, u.entry_count
FROM updated u;
