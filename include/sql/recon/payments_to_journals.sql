-- Stripe payments -> journals: every payment closeout recorded from Stripe (closeout.invoice_payments, kind
-- 'payment') that occurred by the external cut-off has its payment journal posted by the ledger cut-off, in
-- the same currency, debiting the same amount; and no payment journal lacks its recorded payment.
WITH journals AS (
    SELECT j.source_ref, j.currency, sum(l.debit_minor) AS debit_minor
    FROM closeout_data.journals j
    JOIN closeout_data.journal_lines l ON l.journal_id = j.journal_id
    WHERE j.kind = 'payment' AND j.posted_at <= {ledger_cutoff}
    GROUP BY j.source_ref, j.currency
), payments AS (
    SELECT p.payment_ref, p.currency, p.amount_minor
    FROM closeout.invoice_payments p
    JOIN closeout.invoices i ON i.invoice_id = p.invoice_id
    WHERE p.kind = 'payment' AND p.amount_minor > 0 AND p.occurred_at <= {external_cutoff}
      AND ({period_start}::date IS NULL OR (p.occurred_at >= {period_start}::date AND p.occurred_at < {period_end}::date))
)
SELECT CASE WHEN j.source_ref IS NULL THEN 'payment_without_journal' ELSE 'payment_vs_journal' END AS kind,
       p.currency, p.payment_ref AS item, coalesce(j.debit_minor, 0) - p.amount_minor AS difference_minor,
       (j.source_ref IS NULL OR upper(j.currency) <> upper(p.currency)) AS hard
FROM payments p
LEFT JOIN journals j ON j.source_ref = p.payment_ref
WHERE j.source_ref IS NULL OR j.debit_minor <> p.amount_minor OR upper(j.currency) <> upper(p.currency)
UNION ALL
SELECT 'journal_without_payment', j.currency, j.source_ref, j.debit_minor, true
FROM journals j
WHERE NOT EXISTS (SELECT 1 FROM closeout.invoice_payments p WHERE p.payment_ref = j.source_ref AND p.kind = 'payment')
