-- An invoice deleted in the tracker by hand: its rows (invoice, state message, payments, credit notes) are planned
-- again, once; the deleted mirror's id is kept.
UPDATE closeout_data.tracker_writebacks
SET status = 'planned', replaced_external_id = CASE WHEN object_kind = 'invoice' THEN external_id
                                                    ELSE replaced_external_id END,
    external_id = NULL, remirrors = remirrors + CASE WHEN object_kind = 'invoice' THEN 1 ELSE 0 END,
    reason = %(reason)s, completed_at = NULL, updated_at = clock_timestamp()
WHERE source = %(source)s AND invoice_id = %(invoice_id)s
  AND object_kind IN ('invoice', 'message', 'payment', 'credit_note') AND status IN ('done', 'failed')
