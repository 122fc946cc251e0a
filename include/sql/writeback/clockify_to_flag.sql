-- Clockify entries billed on invoices issued in Stripe whose invoiced flag is not yet written.
SELECT i.invoice_id, array_agg(e.source_id ORDER BY e.source_id) AS entry_ids
FROM closeout_data.invoices i
JOIN closeout_data.invoice_line_entries e
  ON e.invoice_id = i.invoice_id AND e.valid_to IS NULL AND e.source = 'clockify' AND e.amount_minor > 0
LEFT JOIN closeout_data.tracker_writebacks w
  ON w.source = 'clockify' AND w.object_kind = 'invoiced_flag' AND w.closeout_ref = i.invoice_id
WHERE i.status IN ('open', 'paid') AND i.stripe_invoice_id IS NOT NULL
  AND (w.writeback_id IS NULL OR w.status IN ('planned', 'sent'))
GROUP BY i.invoice_id
ORDER BY i.invoice_id
