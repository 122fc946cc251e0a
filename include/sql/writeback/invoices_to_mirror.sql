-- Invoices issued in Stripe (open or paid: finalized there) that bill time or expenses of one tracker and whose
-- mirror there is not finished: no write-back row yet, or one still planned/sent (a lost answer to resolve).
-- The tracker is the source parameter.
SELECT i.invoice_id, i.client_key, i.currency, i.period_start, i.period_end, i.total_minor, i.status,
       i.stripe_invoice_id, i.stripe_number, c.exponent, w.status AS writeback_status
FROM closeout_data.invoices i
JOIN closeout_data.currencies c ON c.code = i.currency
LEFT JOIN closeout_data.tracker_writebacks w
       ON w.source = %(source)s AND w.object_kind = 'invoice' AND w.closeout_ref = i.invoice_id
WHERE i.status IN ('open', 'paid') AND i.stripe_invoice_id IS NOT NULL
  AND (w.writeback_id IS NULL OR w.status IN ('planned', 'sent'))
  AND (EXISTS (SELECT 1 FROM closeout_data.invoice_line_entries e
               WHERE e.invoice_id = i.invoice_id AND e.valid_to IS NULL AND e.source = %(source)s)
       OR EXISTS (SELECT 1 FROM closeout.invoice_line_expenses x
                  WHERE x.invoice_id = i.invoice_id AND x.source = %(source)s))
ORDER BY i.period_start, i.invoice_id
LIMIT %(limit)s
