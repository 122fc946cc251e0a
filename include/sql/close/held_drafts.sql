-- Drafts of the closed period that wait for an approval (publish_policy hold): the 'auto' publish-policy
-- override approves exactly these, each as an approval recorded by the close run.
SELECT invoice_id, version, client_key, currency, total_minor
FROM closeout_data.invoices
WHERE status = 'draft' AND line_count > 0 AND total_minor > 0
  AND period_start >= %(start)s AND period_end < %(next_start)s
  AND publish_policy <> 'auto' AND approved_version IS DISTINCT FROM version
ORDER BY period_start, client_key, currency
