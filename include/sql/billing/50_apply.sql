-- Compare what dirty entries should contribute to drafts with what drafts hold for them now, and
-- write only the difference: rows that no longer hold are closed at the invoice's next version, new
-- rows start at it. Every invoice with a difference gets exactly one new version.
CREATE TEMP TABLE billing_current ON COMMIT DROP AS
SELECT e.invoice_id, e.line_key, e.source, e.source_id, e.entry_version, e.quantity, e.unit_rate,
       e.amount_minor, e.valid_from
FROM billing_dirty d
JOIN closeout_data.invoice_line_entries e
  ON e.source = d.source AND e.source_id = d.source_id AND e.valid_to IS NULL
-- a locked period's draft keeps what it holds (40_desired bills changes to it elsewhere)
JOIN closeout_data.invoices i
  ON i.invoice_id = e.invoice_id AND i.status = 'draft' AND NOT coalesce(i.period_end <= %(locked_through)s::date, false);

CREATE TEMP TABLE billing_to_close ON COMMIT DROP AS
SELECT c.* FROM billing_current c
WHERE NOT EXISTS (
    SELECT 1 FROM billing_desired w
    WHERE w.invoice_id = c.invoice_id AND w.line_key = c.line_key AND w.source = c.source
      AND w.source_id = c.source_id AND w.entry_version = c.entry_version AND w.quantity = c.quantity
      AND w.unit_rate = c.unit_rate AND w.amount_minor = c.amount_minor);

-- What drafts already hold needs no writing: from here on billing_desired is what to add. (Deleting
-- the few rows in place, instead of copying the rest, spares a first run a copy of every entry; and
-- when drafts hold nothing of these entries, as on a first run, the one-time check skips the pass.)
DELETE FROM billing_desired w
USING billing_current c
WHERE w.invoice_id = c.invoice_id AND w.line_key = c.line_key AND w.source = c.source
  AND w.source_id = c.source_id AND w.entry_version = c.entry_version AND w.quantity = c.quantity
  AND w.unit_rate = c.unit_rate AND w.amount_minor = c.amount_minor
  AND EXISTS (SELECT 1 FROM billing_current);

-- Drafts that do not exist yet: one per client, currency and period, with the client's terms.
-- The invoice id is derived from client, currency and period (and the client's billing period goes with
-- the client), so every row of a group holds the same values: min() picks that one value (any_value()
-- would say so more plainly, but it needs PostgreSQL 16 and closeout supports 15).
INSERT INTO closeout_data.invoices (invoice_id, client_key, currency, period_start, period_end, billing_period,
                                    payment_terms_days, publish_policy)
SELECT a.invoice_id, a.client_key, a.currency, a.period_start, a.period_end, a.billing_period,
       coalesce(bc.payment_terms_days, df.payment_terms_days), coalesce(bc.publish_policy, df.publish_policy)
FROM (SELECT invoice_id, min(client_key) AS client_key, min(currency) AS currency,
             min(period_start) AS period_start, min(period_end) AS period_end,
             min(billing_period) AS billing_period
      FROM billing_desired GROUP BY invoice_id) a
CROSS JOIN (SELECT * FROM closeout_data.billing_clients WHERE client_key = '*') df
LEFT JOIN closeout_data.billing_clients bc ON bc.client_key = a.client_key AND bc.client_key <> '*'
ORDER BY a.invoice_id
ON CONFLICT (invoice_id) DO NOTHING;

-- Every invoice with a difference, and the version it becomes. Written to the invoice once, with its
-- new totals, when its lines are done (60_lines): one update per invoice, not two.
CREATE TEMP TABLE billing_bumped ON COMMIT DROP AS
SELECT i.invoice_id, i.version + 1 AS version
FROM closeout_data.invoices i
WHERE i.invoice_id IN (SELECT invoice_id FROM billing_to_close UNION SELECT invoice_id FROM billing_desired);

-- one small table to join: the planner then probes the current-row index once per closed row
CREATE TEMP TABLE billing_closing ON COMMIT DROP AS
SELECT c.invoice_id, c.line_key, c.source, c.source_id, c.valid_from, b.version
FROM billing_to_close c
JOIN billing_bumped b ON b.invoice_id = c.invoice_id;

UPDATE closeout_data.invoice_line_entries e
SET valid_to = c.version
FROM billing_closing c
WHERE e.source = c.source AND e.source_id = c.source_id AND e.valid_to IS NULL
  AND e.invoice_id = c.invoice_id AND e.line_key = c.line_key AND e.valid_from = c.valid_from;

INSERT INTO closeout_data.invoice_line_entries (invoice_id, line_key, source, source_id, entry_version,
                                                quantity, unit_rate, amount_minor, valid_from)
SELECT a.invoice_id, a.line_key, a.source, a.source_id, a.entry_version, a.quantity, a.unit_rate,
       a.amount_minor, b.version
FROM billing_desired a
JOIN billing_bumped b ON b.invoice_id = a.invoice_id;
