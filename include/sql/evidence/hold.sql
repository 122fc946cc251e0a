-- One payout hold as recorded (closeout.payout_holds).
SELECT h.hold_id, h.opened_at, h.reason, h.recon_run_id, h.check_name, h.period, h.cause_key, h.details,
       h.caused_by, h.released_at, h.released_by, h.release_reason
FROM closeout.payout_holds h
WHERE h.hold_id = %(hold_id)s;
