-- Stripe credit notes (not void) of invoices already mirrored in the tracker that are not yet reflected there.
-- A credit note names its closeout invoice, or only its Stripe invoice (as captured from Stripe's events).
SELECT n.credit_note_id, i.invoice_id, n.number, n.amount_minor, n.currency, c.exponent,
       w.external_id AS tracker_invoice_id
FROM closeout_data.credit_notes n
JOIN closeout_data.invoices i
  ON i.invoice_id = coalesce(n.invoice_id, (SELECT s.invoice_id FROM closeout_data.invoices s
                                            WHERE s.stripe_invoice_id = n.stripe_invoice_id))
JOIN closeout_data.currencies c ON c.code = upper(n.currency)
JOIN closeout_data.tracker_writebacks w
  ON w.source = %(source)s AND w.object_kind = 'invoice' AND w.closeout_ref = i.invoice_id AND w.status = 'done'
LEFT JOIN closeout_data.tracker_writebacks r
  ON r.source = %(source)s AND r.object_kind = 'credit_note' AND r.closeout_ref = n.credit_note_id
WHERE n.status <> 'void' AND n.voided_at IS NULL AND n.amount_minor > 0
  AND (r.writeback_id IS NULL OR r.status IN ('planned', 'sent'))
ORDER BY n.created_at, n.credit_note_id
