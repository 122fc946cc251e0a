-- Close report: the latest finished reconciliation run of each requested period (a YYYY-MM list) and its
-- checks. The first period of the list is the report's own; the others draw the status history.
WITH latest AS (
    SELECT DISTINCT ON (r.period) r.run_id, r.period, r.status, r.started_at, r.finished_at,
           coalesce(r.data_docs, '') AS data_docs
    FROM closeout.recon_runs r
    WHERE r.period = ANY(%(periods)s) AND r.finished_at IS NOT NULL
    ORDER BY r.period, r.started_at DESC, r.run_id DESC
)
SELECT l.period, l.run_id, l.status AS run_status, l.started_at, l.finished_at, l.data_docs,
       c.check_name, c.suite, c.status, c.observed, c.tolerance, c.evidence
FROM latest l
LEFT JOIN closeout.recon_checks c ON c.run_id = l.run_id
ORDER BY l.period, c.check_name;
