-- A dispute moves forward by status (warning_* -> needs_response -> under_review -> won | lost); when it closed
-- is the earliest close any snapshot reported (the close event's time beats a later list read).
INSERT INTO closeout_data.disputes AS t (
    dispute_id, charge_id, payment_intent_id, currency, amount_minor, status, reason, created_at, closed_at,
    observed_at)
SELECT DISTINCT ON (s.dispute_id)
       s.dispute_id, s.charge_id, s.payment_intent_id, s.currency, s.amount_minor, s.status, s.reason,
       to_timestamp(s.created), to_timestamp(min(s.closed_at) OVER (PARTITION BY s.dispute_id)), s.observed_at
FROM pg_temp.cash_stage_dispute s
ORDER BY s.dispute_id, closeout_data.stripe_status_rank('dispute', s.status) DESC, s.observed_at DESC
ON CONFLICT (dispute_id) DO UPDATE SET
    charge_id = coalesce(excluded.charge_id, t.charge_id),
    payment_intent_id = coalesce(excluded.payment_intent_id, t.payment_intent_id),
    amount_minor = CASE WHEN (closeout_data.stripe_status_rank('dispute', excluded.status), excluded.observed_at)
                             > (closeout_data.stripe_status_rank('dispute', t.status), t.observed_at)
                        THEN excluded.amount_minor ELSE t.amount_minor END,
    status = CASE WHEN (closeout_data.stripe_status_rank('dispute', excluded.status), excluded.observed_at)
                       > (closeout_data.stripe_status_rank('dispute', t.status), t.observed_at)
                  THEN excluded.status ELSE t.status END,
    reason = coalesce(excluded.reason, t.reason),
    closed_at = CASE WHEN closeout_data.stripe_status_rank('dispute', excluded.status) >= 4
                       OR closeout_data.stripe_status_rank('dispute', t.status) >= 4
                     THEN least(t.closed_at, excluded.closed_at) END,
    observed_at = greatest(t.observed_at, excluded.observed_at),
    updated_at = clock_timestamp()
WHERE ((closeout_data.stripe_status_rank('dispute', excluded.status), excluded.observed_at)
       > (closeout_data.stripe_status_rank('dispute', t.status), t.observed_at)
       AND (excluded.status, excluded.amount_minor) IS DISTINCT FROM (t.status, t.amount_minor))
   OR (excluded.closed_at IS NOT NULL AND (t.closed_at IS NULL OR excluded.closed_at < t.closed_at))
