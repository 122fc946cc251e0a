-- A dispute opens a payment exception for finance (evidence to submit, a decision to follow). Once Stripe's own
-- dispute list says it has ended (won or lost), the exception is answered by that ruling: resolved, by Stripe,
-- with the outcome as the resolution. The money side is booked by the ledger (withdrawal, reinstatement) and the
-- payouts follow the dispute's status, so nothing is left for a person to do; leaving the exception open would hold
-- every payout (invoices_to_stripe) for a case that is closed. Open disputes keep their exception.
UPDATE closeout_data.payment_exceptions x
SET resolved_at = clock_timestamp(),
    resolved_by = 'stripe',
    resolution = 'dispute ' || d.dispute_id || ' ' || d.status || ' in Stripe'
        || coalesce(' at ' || to_char(d.closed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI"Z"'), '')
FROM closeout_data.disputes d
WHERE x.kind = 'dispute'
  AND x.resolved_at IS NULL
  AND x.stripe_object_id = d.dispute_id
  AND d.status IN ('won', 'lost')
