-- The alerts about the hold: finance's hold alerts (one per channel) and the failure notifiers' deliveries for the
-- reconciliation run's Airflow run.
SELECT 'finance_alert'::text AS alert, f.channel, 'sent'::text AS status, f.subject, 1 AS attempts,
       NULL::text AS last_error, f.sent_at AS attempted_at, f.sent_at
FROM closeout.finance_alerts f
WHERE f.hold_id = %(hold_id)s
UNION ALL
SELECT 'failure_notifier', a.channel, a.status, a.subject, a.attempts, a.last_error, a.attempted_at, a.sent_at
FROM closeout.alerts_sent a
JOIN closeout_data.alert_causes c USING (cause_id)
JOIN closeout_data.recon_runs r ON r.airflow_run_id IS NOT NULL AND r.airflow_run_id IN (c.first_run_id, c.last_run_id)
JOIN closeout_data.payout_holds h ON h.recon_run_id = r.run_id
WHERE h.hold_id = %(hold_id)s
ORDER BY 7, 2;
