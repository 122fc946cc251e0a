-- The difference rows behind the failing checks of the hold's run (closeout.recon_differences), largest first.
SELECT d.run_id, d.check_name, d.kind, d.currency, d.item, d.difference_minor, d.hard
FROM closeout_data.payout_holds h
JOIN closeout.recon_checks c ON c.run_id = h.recon_run_id
JOIN closeout.recon_differences d ON d.run_id = c.run_id AND d.check_name = c.check_name
WHERE h.hold_id = %(hold_id)s AND (c.status IN ('failed', 'error') OR c.check_name = h.check_name)
ORDER BY d.check_name, abs(d.difference_minor) DESC, d.item;
