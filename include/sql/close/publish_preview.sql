-- What the publish step would send to Stripe on %(as_of)s: the drafts policy lets go out (the same rule as
-- closeout.billing.lifecycle.publishable), held drafts of the closed period when the 'auto' override approves
-- them, and frozen invoices whose publication has not finished yet.
SELECT invoice_id, client_key, period_start, period_end, currency, total_minor, line_count,
       CASE WHEN status = 'publishing' THEN 'resume'
            WHEN publish_policy = 'auto' OR approved_version = version THEN 'publish'
            ELSE 'approve_and_publish' END AS action
FROM closeout_data.invoices
WHERE status = 'publishing'
   OR (status = 'draft' AND line_count > 0 AND total_minor > 0 AND period_end < %(as_of)s
       AND closeout_data.pilot_live(invoice_id)  -- shadow drafts stay out (docs/pilot.md; the cohort last mirrored)
       AND (publish_policy = 'auto' OR approved_version = version
            OR (%(approve_held)s AND period_start >= %(start)s)))
ORDER BY period_start, client_key, currency, invoice_id
