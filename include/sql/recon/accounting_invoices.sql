-- Invoices -> the accounting system's own export (Xero invoices ingested into closeout.accounting_invoices),
-- per invoice number (our Stripe number): the latest ingested row of each number, dated by the external
-- cut-off, against our published invoices finalized by the ledger cut-off. Missing on either side, another
-- currency or another total is a difference row (signed: theirs minus ours).
-- Tax (docs/invoice-tax.md): where the file carries the invoice's tax (Xero's TaxTotal), another tax than ours
-- (closeout.invoices.tax_minor) is a 'tax' difference row too, for the same number and currency.
-- Per accounting system: with QuickBooks and Xero both connected, each system's latest rows are compared with our
-- invoices on their own (an edit made in one system is never hidden by the other's later read-back), and the item
-- names the system; with one system, as before, the item is the invoice number.
WITH systems AS (
    -- the systems whose invoices were ingested (a NULL system when none was: every invoice is then missing)
    SELECT DISTINCT i.system FROM closeout.accounting_ingests i WHERE i.kind = 'invoices'
    UNION ALL
    SELECT NULL WHERE NOT EXISTS (SELECT 1 FROM closeout.accounting_ingests i WHERE i.kind = 'invoices')
), named AS (
    SELECT (SELECT count(*) FROM systems) > 1 AS by_system
), theirs AS (
    SELECT DISTINCT ON (a.system, a.invoice_number) a.system, a.invoice_number, upper(a.currency) AS currency,
           a.signed_total_minor AS total_minor, a.ingest_id
    FROM closeout.accounting_invoices a
    WHERE a.invoice_date <= {external_cutoff}::date
      AND ({period_start}::date IS NULL OR (a.invoice_date >= {period_start}::date AND a.invoice_date < {period_end}::date))
    ORDER BY a.system, a.invoice_number, a.ingest_id DESC
), their_tax AS (
    SELECT t.system, t.invoice_number, min(x.tax_total_minor) AS tax_minor
    FROM theirs t
    JOIN closeout_data.accounting_xero_invoice_lines x ON x.ingest_id = t.ingest_id AND x.invoice_number = t.invoice_number
    GROUP BY t.system, t.invoice_number
    HAVING min(x.tax_total_minor) IS NOT NULL
), ours AS (
    SELECT s.system, i.stripe_number AS invoice_number, upper(i.currency) AS currency, i.total_minor, i.tax_minor
    FROM closeout.invoices i
    CROSS JOIN systems s
    JOIN closeout.stripe_publications p ON p.invoice_id = i.invoice_id AND p.state = 'finalized'
    WHERE i.status IN ('open', 'paid', 'uncollectible') AND i.stripe_number IS NOT NULL
      AND p.finalized_at <= {ledger_cutoff}
      AND ({period_start}::date IS NULL OR (i.period_start >= {period_start}::date AND i.period_start < {period_end}::date))
)
SELECT CASE WHEN t.invoice_number IS NULL THEN 'missing_in_export'
            WHEN o.invoice_number IS NULL THEN 'unknown_in_export'
            WHEN t.currency <> o.currency THEN 'currency'
            ELSE 'total' END AS kind,
       coalesce(o.currency, t.currency) AS currency,
       CASE WHEN n.by_system THEN coalesce(o.system, t.system) || ' ' ELSE '' END
           || coalesce(o.invoice_number, t.invoice_number) AS item,
       coalesce(t.total_minor, 0) - coalesce(o.total_minor, 0) AS difference_minor,
       (t.invoice_number IS NOT NULL AND o.invoice_number IS NOT NULL AND t.currency <> o.currency) AS hard
FROM ours o
FULL JOIN theirs t ON t.system = o.system AND t.invoice_number = o.invoice_number
CROSS JOIN named n
WHERE t.invoice_number IS NULL OR o.invoice_number IS NULL OR t.currency <> o.currency OR t.total_minor <> o.total_minor
UNION ALL
SELECT 'tax', o.currency, CASE WHEN n.by_system THEN o.system || ' ' ELSE '' END || o.invoice_number,
       x.tax_minor - o.tax_minor, false
FROM ours o
JOIN theirs t ON t.system = o.system AND t.invoice_number = o.invoice_number AND t.currency = o.currency
JOIN their_tax x ON x.system = o.system AND x.invoice_number = o.invoice_number
CROSS JOIN named n
WHERE x.tax_minor <> o.tax_minor
