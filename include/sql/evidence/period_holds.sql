-- The payout holds opened for the period, released or not, with their incident packs.
SELECT h.hold_id, h.opened_at, h.reason, h.recon_run_id, h.check_name, h.period, h.caused_by, h.released_at,
       h.released_by, h.release_reason, h.evidence_pack
FROM closeout.payout_holds h
WHERE h.period = %(period)s
ORDER BY h.hold_id;
