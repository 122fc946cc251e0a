-- Close report: payout holds that matter for the period: every open hold (any open hold stops all payouts)
-- and the period's released ones, with who released them.
SELECT h.hold_id, h.reason, h.check_name, coalesce(h.period, '') AS period, h.recon_run_id, h.opened_at,
       h.released_at, coalesce(h.released_by, '') AS released_by, coalesce(h.release_reason, '') AS release_reason
FROM closeout.payout_holds h
WHERE h.released_at IS NULL OR h.period = %(period)s
ORDER BY h.released_at IS NULL DESC, h.hold_id;
