-- Invoices imported into the tracker whose expense markup (Harvest's import bills expenses at cost) is not yet an
-- explicit line on the mirror. The markup to add is what the import's plan recorded (computed from closeout's own
-- expense rows and lines), so it is only ever the difference closeout billed; the line's row is the invoice's
-- '<invoice>/markup' row (object_kind credit_note: the kind of lines closeout appends to a mirrored invoice).
SELECT w.invoice_id, w.external_id AS tracker_invoice_id, (w.request ->> 'markup_minor')::bigint AS markup_minor,
       i.currency, c.exponent
FROM closeout_data.tracker_writebacks w
JOIN closeout_data.invoices i ON i.invoice_id = w.invoice_id
JOIN closeout_data.currencies c ON c.code = i.currency
LEFT JOIN closeout_data.tracker_writebacks m
  ON m.source = w.source AND m.object_kind = 'credit_note' AND m.closeout_ref = w.invoice_id || '/markup'
WHERE w.source = %(source)s AND w.object_kind = 'invoice' AND w.closeout_ref = w.invoice_id AND w.status = 'done'
  AND w.request ->> 'method' = 'import' AND coalesce((w.request ->> 'markup_minor')::bigint, 0) > 0
  AND (m.writeback_id IS NULL OR m.status IN ('planned', 'sent'))
ORDER BY w.invoice_id
