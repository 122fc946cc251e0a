-- Stripe payments of invoices already mirrored (and marked sent) in the tracker that are not yet recorded there.
SELECT p.payment_ref, p.invoice_id, p.amount_minor, p.currency, p.occurred_at, c.exponent,
       w.external_id AS tracker_invoice_id
FROM closeout_data.invoice_payments p
JOIN closeout_data.currencies c ON c.code = upper(p.currency)
JOIN closeout_data.tracker_writebacks w
  ON w.source = %(source)s AND w.object_kind = 'invoice' AND w.closeout_ref = p.invoice_id AND w.status = 'done'
JOIN closeout_data.tracker_writebacks m
  ON m.source = %(source)s AND m.object_kind = 'message' AND m.closeout_ref = p.invoice_id || '/send'
     AND m.status = 'done'
LEFT JOIN closeout_data.tracker_writebacks r
  ON r.source = %(source)s AND r.object_kind = 'payment' AND r.closeout_ref = p.payment_ref
WHERE p.kind = 'payment' AND p.amount_minor > 0
  AND (r.writeback_id IS NULL OR r.status IN ('planned', 'sent'))
ORDER BY p.occurred_at, p.payment_ref
