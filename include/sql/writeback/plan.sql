-- Record the intent of one write before it is made (idempotent: an existing row is returned as it is).
INSERT INTO closeout_data.tracker_writebacks (source, object_kind, closeout_ref, invoice_id, writeback_key, request)
VALUES (%(source)s, %(object_kind)s, %(closeout_ref)s, %(invoice_id)s, %(writeback_key)s, %(request)s)
ON CONFLICT (source, object_kind, closeout_ref) DO UPDATE SET updated_at = closeout_data.tracker_writebacks.updated_at
RETURNING writeback_id, status, external_id, attempts, remirrors
