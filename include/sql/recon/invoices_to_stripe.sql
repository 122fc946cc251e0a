-- Invariant 3: every published invoice has exactly one Stripe invoice with the same total and currency, on what
-- closeout recorded from Stripe (closeout.stripe_publications.stripe_total_minor, closeout.payment_exceptions);
-- no API call. One row per difference; empty when it holds.
-- (a) published (open, paid, uncollectible, void) by the ledger cut-off: a finalized publication for the same
--     Stripe invoice id and currency whose Stripe total equals ours;
-- (b) the tax (docs/invoice-tax.md): a finalized publication whose Stripe tax (the sum of the invoice's
--     total_taxes, stripe_tax_minor) differs from ours (closeout.invoices.tax_minor), naming the invoice; a
--     publication recorded before tax was recorded (stripe_tax_minor NULL) of an untaxed invoice is not a
--     difference;
-- (c) an unresolved payment exception opened by the external cut-off (a Stripe total or tax that differed, ...);
-- (d) one Stripe invoice id used by two of our invoices.
WITH published AS (
    SELECT i.invoice_id, i.currency, i.total_minor, i.tax_minor, i.stripe_invoice_id
    FROM closeout.invoices i
    WHERE i.status IN ('open', 'paid', 'uncollectible', 'void') AND i.stripe_invoice_id IS NOT NULL
      AND ({period_start}::date IS NULL OR (i.period_start >= {period_start}::date AND i.period_start < {period_end}::date))
)
SELECT 'publication' AS kind, i.currency, i.invoice_id AS item,
       coalesce(p.stripe_total_minor, 0) - i.total_minor AS difference_minor,
       (p.invoice_id IS NULL OR p.stripe_invoice_id IS DISTINCT FROM i.stripe_invoice_id
        OR upper(p.currency) <> upper(i.currency)) AS hard
FROM published i
LEFT JOIN closeout.stripe_publications p ON p.invoice_id = i.invoice_id AND p.state = 'finalized'
WHERE coalesce(p.finalized_at, '-infinity') <= {ledger_cutoff}
  AND (p.invoice_id IS NULL OR p.stripe_invoice_id IS DISTINCT FROM i.stripe_invoice_id
       OR upper(p.currency) <> upper(i.currency) OR p.stripe_total_minor IS DISTINCT FROM i.total_minor)
UNION ALL
SELECT 'tax', i.currency, i.invoice_id, coalesce(p.stripe_tax_minor, 0) - i.tax_minor, true
FROM published i
JOIN closeout.stripe_publications p ON p.invoice_id = i.invoice_id AND p.state = 'finalized'
WHERE p.finalized_at <= {ledger_cutoff}
  AND coalesce(p.stripe_tax_minor, 0) <> i.tax_minor
UNION ALL
SELECT 'exception:' || x.kind, x.currency, coalesce(x.invoice_id, x.stripe_object_id, x.exception_id::text),
       coalesce(x.stripe_total_minor - x.our_total_minor, 0), true
FROM closeout.payment_exceptions x
WHERE x.resolved_at IS NULL AND x.opened_at <= {external_cutoff}
UNION ALL
SELECT 'duplicate_stripe_invoice', min(i.currency), i.stripe_invoice_id, 0, true
FROM closeout.invoices i WHERE i.stripe_invoice_id IS NOT NULL
GROUP BY i.stripe_invoice_id HAVING count(*) > 1
