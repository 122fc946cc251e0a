-- Invoices mirrored in the tracker whose "sent" state message is not yet recorded as made.
SELECT w.invoice_id, w.external_id AS tracker_invoice_id
FROM closeout_data.tracker_writebacks w
LEFT JOIN closeout_data.tracker_writebacks m
  ON m.source = w.source AND m.object_kind = 'message' AND m.closeout_ref = w.invoice_id || '/send'
WHERE w.source = %(source)s AND w.object_kind = 'invoice' AND w.status = 'done'
  AND (m.writeback_id IS NULL OR m.status IN ('planned', 'sent'))
ORDER BY w.invoice_id
