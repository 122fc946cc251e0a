-- Every reconciliation verdict on the period (closeout.recon_checks), with its run's Data Docs location.
SELECT c.run_id, c.period, c.check_name, c.suite, c.status, c.observed, c.tolerance, c.evidence, c.checked_at,
       r.data_docs
FROM closeout.recon_checks c
JOIN closeout.recon_runs r USING (run_id)
WHERE c.period = %(period)s
ORDER BY c.checked_at, c.run_id, c.check_name;
