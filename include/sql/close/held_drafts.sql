-- Drafts of the closed period held for an approval: the client's publish policy is 'hold' and this version is
-- not approved (never approved, or approved at an earlier version and rebuilt since). With publish_policy 'auto'
-- the close asks the finance group to approve exactly these (closeout.close.approval); what finance is shown:
-- client, period, amount in its currency and why the draft is held.
SELECT i.invoice_id, i.version, i.client_key, coalesce(b.name, t.name, '') AS client_name, i.period_start,
       i.period_end, i.currency, c.exponent, i.total_minor, i.approved_version, i.approved_by
FROM closeout_data.invoices i
JOIN closeout_data.currencies c ON c.code = i.currency
LEFT JOIN closeout_data.billing_clients b ON b.client_key = i.client_key
LEFT JOIN closeout_data.tracker_entities t
       ON t.kind = 'client' AND t.source || ':' || t.source_id = i.client_key
WHERE i.status = 'draft' AND i.line_count > 0 AND i.total_minor > 0
  AND i.period_start >= %(start)s AND i.period_end < %(next_start)s
  AND i.publish_policy <> 'auto' AND i.approved_version IS DISTINCT FROM i.version
ORDER BY i.period_start, i.client_key, i.currency, i.invoice_id
