-- Tax on the invoice itself (issue 17 item 3; migration 0042). Runs last, after the time and expense
-- lines are written. A draft carries its client's tax configuration (the client's row, else the defaults)
-- and its tax: each current line's tax rounded once, half-up, in the currency's minor unit
-- (closeout_data.line_tax_minor), summed. total_minor is what the client owes: the lines plus the tax when
-- the rate is exclusive (an inclusive rate's tax is inside the line amounts). Recomputed from the lines
-- for every taxed draft this run changed (the line steps moved its total by the lines only) and for every
-- unlocked draft whose client's tax configuration is no longer the one it carries. A draft this run changed
-- records its tax and total on the version it built; a draft changed by its tax alone becomes a new version
-- (its lines carry over unwritten), so an approval given to the version before does not cover the new total.
-- Untaxed drafts of untaxed clients are not read at all: nothing changes for them.
-- Frozen invoices keep the tax they were frozen with (closeout_data.guard_invoice_tax).
WITH defaults AS (
    SELECT * FROM closeout_data.billing_clients WHERE client_key = '*'
),
config AS (
    SELECT i.invoice_id, i.version,
           CASE WHEN bc.client_key IS NULL THEN d.tax_rate_percent ELSE bc.tax_rate_percent END AS rate_percent,
           CASE WHEN bc.client_key IS NULL THEN d.tax_inclusive ELSE bc.tax_inclusive END AS inclusive,
           CASE WHEN bc.client_key IS NULL THEN d.tax_exempt ELSE bc.tax_exempt END AS exempt,
           CASE WHEN bc.client_key IS NULL THEN d.tax_name ELSE bc.tax_name END AS tax_name,
           CASE WHEN bc.client_key IS NULL THEN d.tax_jurisdiction ELSE bc.tax_jurisdiction END AS jurisdiction,
           CASE WHEN bc.client_key IS NULL THEN d.tax_quickbooks_code ELSE bc.tax_quickbooks_code END
               AS quickbooks_code,
           CASE WHEN bc.client_key IS NULL THEN d.tax_xero_type ELSE bc.tax_xero_type END AS xero_type,
           i.tax_rate_percent AS had_rate, i.tax_inclusive AS had_inclusive, i.tax_exempt AS had_exempt,
           i.tax_name AS had_name, i.tax_jurisdiction AS had_jurisdiction,
           i.tax_quickbooks_code AS had_quickbooks_code, i.tax_xero_type AS had_xero_type, i.period_end
    FROM closeout_data.invoices i
    CROSS JOIN defaults d
    LEFT JOIN closeout_data.billing_clients bc ON bc.client_key = i.client_key AND bc.client_key <> '*'
    WHERE i.status = 'draft'
),
candidates AS (
    SELECT c.*, EXISTS (SELECT 1 FROM closeout_data.invoice_versions v
                        WHERE v.invoice_id = c.invoice_id AND v.version = c.version
                          AND v.draft_run_id = %(draft_run_id)s) AS bumped
    FROM config c
    WHERE c.rate_percent IS NOT NULL OR c.exempt OR c.had_rate IS NOT NULL OR c.had_exempt
),
targets AS MATERIALIZED (
    SELECT c.*
    FROM candidates c
    WHERE (c.bumped
           OR ((c.rate_percent, c.inclusive, c.exempt, c.tax_name, c.jurisdiction, c.quickbooks_code, c.xero_type)
                   IS DISTINCT FROM (c.had_rate, c.had_inclusive, c.had_exempt, c.had_name, c.had_jurisdiction,
                                     c.had_quickbooks_code, c.had_xero_type)
               AND (%(locked_through)s::date IS NULL OR c.period_end > %(locked_through)s::date)))
),
sums AS (
    SELECT t.invoice_id, coalesce(sum(l.amount_minor), 0)::bigint AS lines_minor,
           coalesce(sum(closeout_data.line_tax_minor(l.amount_minor, t.rate_percent, t.inclusive)), 0)::bigint
               AS tax_minor
    FROM targets t
    LEFT JOIN closeout_data.invoice_lines l ON l.invoice_id = t.invoice_id AND l.valid_to IS NULL
    GROUP BY t.invoice_id
),
updated AS (
    UPDATE closeout_data.invoices i
    SET tax_rate_percent = t.rate_percent, tax_inclusive = t.inclusive, tax_exempt = t.exempt,
        tax_name = t.tax_name, tax_jurisdiction = t.jurisdiction, tax_quickbooks_code = t.quickbooks_code,
        tax_xero_type = t.xero_type, tax_minor = s.tax_minor,
        total_minor = s.lines_minor + CASE WHEN t.inclusive THEN 0 ELSE s.tax_minor END,
        version = CASE WHEN t.bumped THEN i.version ELSE i.version + 1 END,
        updated_at = clock_timestamp()
    FROM targets t
    JOIN sums s ON s.invoice_id = t.invoice_id
    WHERE i.invoice_id = t.invoice_id
      AND (i.tax_rate_percent, i.tax_inclusive, i.tax_exempt, i.tax_name, i.tax_jurisdiction,
           i.tax_quickbooks_code, i.tax_xero_type, i.tax_minor, i.total_minor)
          IS DISTINCT FROM (t.rate_percent, t.inclusive, t.exempt, t.tax_name, t.jurisdiction, t.quickbooks_code,
                            t.xero_type, s.tax_minor,
                            s.lines_minor + CASE WHEN t.inclusive THEN 0 ELSE s.tax_minor END)
    RETURNING i.invoice_id, i.version, i.total_minor, i.tax_minor, i.line_count, i.entry_count, t.bumped
),
recorded AS (
    UPDATE closeout_data.invoice_versions v
    SET total_minor = u.total_minor, tax_minor = u.tax_minor
    FROM updated u
    WHERE u.bumped AND v.invoice_id = u.invoice_id AND v.version = u.version
    RETURNING v.invoice_id
)
INSERT INTO closeout_data.invoice_versions (invoice_id, version, draft_run_id, total_minor, line_count, entry_count,
                                            tax_minor)
SELECT u.invoice_id, u.version, %(draft_run_id)s, u.total_minor, u.line_count, u.entry_count, u.tax_minor
FROM updated u
WHERE NOT u.bumped;
