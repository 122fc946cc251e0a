-- A Stripe list is complete for everything Stripe stamped before its last complete pass began, not only up to
-- the newest object that pass happened to see: an invoice finalized a second after the newest invoice was
-- created (and before the pass) was left unjudged by stripe_objects until some later invoice came along, which at
-- a month's end may be never. The cash sync now records, per stream, one second before Stripe served the pass's
-- first page (its Date header, Stripe's clock) as state.listed_through; the list is complete through the later
-- of that and last_created.
CREATE OR REPLACE FUNCTION closeout_data.stripe_listed_until(stream_name text) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN c.last_created IS NOT NULL OR c.state ->> 'listed_through' IS NOT NULL
                THEN to_timestamp(greatest(c.last_created, (c.state ->> 'listed_through')::bigint))
                WHEN c.state ->> 'incremental' IS NULL THEN c.updated_at END
    FROM closeout_data.stripe_cash_cursors c
    WHERE c.stream = stream_name
$$;
