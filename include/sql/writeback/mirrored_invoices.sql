-- Invoices mirrored in the tracker (done), to check they still exist there.
SELECT writeback_id, closeout_ref AS invoice_id, external_id, remirrors
FROM closeout_data.tracker_writebacks
WHERE source = %(source)s AND object_kind = 'invoice' AND status = 'done'
