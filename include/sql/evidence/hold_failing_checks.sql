-- The checks of the hold's reconciliation run that failed or errored (the hold's own check first).
SELECT c.run_id, c.period, c.check_name, c.suite, c.status, c.observed, c.tolerance, c.evidence, c.checked_at,
       (c.check_name = h.check_name) AS opened_this_hold
FROM closeout_data.payout_holds h
JOIN closeout.recon_checks c ON c.run_id = h.recon_run_id
WHERE h.hold_id = %(hold_id)s AND (c.status IN ('failed', 'error') OR c.check_name = h.check_name)
ORDER BY (c.check_name = h.check_name) DESC, c.check_name;
