-- Invoices closeout voided (status 'void', its void journal posted) after they were pushed to %(system)s /
-- %(company_id)s, not yet voided there: each with its link (the external id and the SyncToken / version last seen)
-- and how often its void was held before (its next try goes under a new key, so a stored refusal is not replayed).
-- A void held for payments there waits for finance but is tried again every run.
SELECT k.closeout_ref AS ref, k.external_id, k.remote_version, i.client_key, i.currency, i.total_minor,
       coalesce(x.attempts, 0) AS attempts
FROM closeout_data.accounting_links k
JOIN closeout.invoices i ON i.invoice_id = k.closeout_ref
LEFT JOIN closeout_data.accounting_push_exceptions x
       ON x.system = k.system AND x.company_id = k.company_id AND x.object_kind = 'invoice'
      AND x.closeout_ref = k.closeout_ref AND x.resolved_at IS NULL AND x.reason = 'has_payments'
WHERE k.system = %(system)s AND k.company_id = %(company_id)s AND k.object_kind = 'invoice'
  AND i.status = 'void' AND k.remote_state IS NULL
ORDER BY k.closeout_ref
