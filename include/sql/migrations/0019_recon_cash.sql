-- 0019 recon against Stripe itself (issue 13 item 5): how far each of Stripe's lists has been read.
--
-- The cash checks (include/sql/recon/stripe_*.sql) compare closeout with what Stripe's list endpoints returned
-- (closeout_data.stripe_* of 0016, filled by closeout.payments.cash), never with the event-fed copy. A list is
-- only complete up to where its last COMPLETED pass reached: every object created up to the newest `created` that
-- pass saw has been listed (closeout.payments.cash.sync walks newest first, without an upper bound, down to the
-- previous pass's newest less an overlap). A pass killed half way leaves `last_created` where the previous one
-- put it, so the answer never covers a half-read list. A stream listed once and found empty has no
-- `last_created`: it is complete up to when that pass ended (its cursor's `updated_at`).
--
-- The checks cap their external cut-off at this moment and judge the ledger's movements up to the same moment,
-- so a movement Stripe made after the last listing (a contractor transfer, a new charge) is left to the next run
-- on both sides instead of showing as a difference.

CREATE FUNCTION closeout_data.stripe_listed_until(stream_name text) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN c.last_created IS NOT NULL THEN to_timestamp(c.last_created)
                WHEN c.state ->> 'incremental' IS NULL THEN c.updated_at END
    FROM closeout_data.stripe_cash_cursors c
    WHERE c.stream = stream_name
$$;

-- For finance and the close report: per list stream, the moment up to which Stripe's list is known complete
-- (NULL: never completely listed yet).
CREATE VIEW closeout.stripe_listed AS
SELECT c.stream, closeout_data.stripe_listed_until(c.stream) AS listed_until, c.updated_at
FROM closeout_data.stripe_cash_cursors c;
