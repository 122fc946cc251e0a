-- What happened to the hold, in order: the reconciliation run, the hold, its alerts, the decisions on it (a refused
-- or recorded release) and its release.
WITH h AS (SELECT * FROM closeout_data.payout_holds WHERE hold_id = %(hold_id)s)
SELECT r.started_at AS at, 'reconciliation started'::text AS event, r.run_id AS subject, NULL::text AS who,
       NULL::text AS detail
FROM h JOIN closeout_data.recon_runs r ON r.run_id = h.recon_run_id
UNION ALL
SELECT r.finished_at, 'reconciliation finished: ' || r.status, r.run_id, NULL, r.data_docs
FROM h JOIN closeout_data.recon_runs r ON r.run_id = h.recon_run_id WHERE r.finished_at IS NOT NULL
UNION ALL
SELECT h.opened_at, 'hold opened', h.hold_id::text, h.caused_by, h.reason FROM h
UNION ALL
SELECT f.sent_at, 'finance alert sent (' || f.channel || ')', h.hold_id::text, NULL, f.subject
FROM h JOIN closeout_data.finance_alerts f ON f.hold_id = h.hold_id
UNION ALL
SELECT d.decided_at, 'decision: ' || d.kind || ' ' || d.outcome, d.subject, d.decided_by, d.reason
FROM h JOIN closeout_data.decisions d ON d.kind = 'hold_release' AND d.subject = h.hold_id::text
UNION ALL
SELECT h.released_at, 'hold released', h.hold_id::text, h.released_by, h.release_reason
FROM h WHERE h.released_at IS NOT NULL
ORDER BY 1, 2;
