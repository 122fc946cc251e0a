-- A finance notice's cause is resolved once its customer no longer holds that dead link (paid, voided, or a
-- newer link delivered): the alert history shows how long it stood. Returns how many.
UPDATE closeout_data.alert_causes c
SET resolved_at = clock_timestamp(), resolved_by_run = 'collections'
FROM closeout_data.collection_actions a
WHERE c.cause_id = a.alert_cause_id AND c.resolved_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM closeout.dead_payment_links d
                  WHERE d.invoice_id = a.invoice_id AND d.expired_at = a.link_expired_at)
