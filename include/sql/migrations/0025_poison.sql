-- 0025 poison: what the warehouse refused to take from a vendor, and what it took only after cleaning.
--
-- * event_quarantine: one row per distinct refused event (Stripe, Toggl, Clockify; webhook or /v1/events
--   backfill) and reason. ``raw`` is the event as it came with every character Postgres refuses written
--   as its \uXXXX escape, so nothing is lost and the quarantine itself can never fail to store it.
-- * input_repairs: free text (notes, names, descriptions) stored with NUL characters or lone surrogates
--   replaced by U+FFFD: which record, which field, what changed.
-- * stripe_events.outcome and cash_outcome may be 'quarantined': an event whose application (invoice state,
--   cash objects) failed on its own data, by itself, with the reason (reason, cash_reason).

CREATE TABLE closeout_data.event_quarantine (
    quarantine_id  bigserial PRIMARY KEY,
    vendor         text NOT NULL,
    event_id       text,
    event_type     text,
    received_via   text NOT NULL CHECK (received_via IN ('webhook', 'backfill', 'apply')),
    field          text,
    reason         text NOT NULL,
    raw            text NOT NULL,
    raw_hash       text NOT NULL,
    inbox_id       bigint,
    first_seen_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_seen_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    times_seen     integer NOT NULL DEFAULT 1,
    resolved_at    timestamptz,
    UNIQUE (vendor, raw_hash, reason)
);
CREATE INDEX event_quarantine_open ON closeout_data.event_quarantine (vendor, event_id) WHERE resolved_at IS NULL;

CREATE TABLE closeout_data.input_repairs (
    repair_id          bigserial PRIMARY KEY,
    source             text NOT NULL,
    entity             text NOT NULL,
    source_id          text,
    field              text NOT NULL,
    change             text NOT NULL,
    first_sync_run_id  bigint,
    last_sync_run_id   bigint,
    first_seen_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_seen_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    times_seen         integer NOT NULL DEFAULT 1
);
-- COALESCE instead of NULLS NOT DISTINCT: the same on PostgreSQL 15 and later
CREATE UNIQUE INDEX input_repairs_once
    ON closeout_data.input_repairs (source, entity, coalesce(source_id, ''), field, change);

ALTER TABLE closeout_data.stripe_events DROP CONSTRAINT IF EXISTS stripe_events_outcome_check;
ALTER TABLE closeout_data.stripe_events ADD CONSTRAINT stripe_events_outcome_check
    CHECK (outcome IN ('applied', 'no_change', 'stale', 'ignored', 'parked', 'quarantined'));
ALTER TABLE closeout_data.stripe_events DROP CONSTRAINT IF EXISTS stripe_events_cash_outcome_check;
ALTER TABLE closeout_data.stripe_events ADD CONSTRAINT stripe_events_cash_outcome_check
    CHECK (cash_outcome IN ('applied', 'stale', 'ignored', 'quarantined'));
ALTER TABLE closeout_data.stripe_events ADD COLUMN cash_reason text;

CREATE VIEW closeout.event_quarantine AS
SELECT quarantine_id, vendor, event_id, event_type, received_via, field, reason, raw, inbox_id,
       first_seen_at, last_seen_at, times_seen, resolved_at
FROM closeout_data.event_quarantine;

CREATE VIEW closeout.input_repairs AS
SELECT repair_id, source, entity, source_id, field, change, first_sync_run_id, last_sync_run_id,
       first_seen_at, last_seen_at, times_seen
FROM closeout_data.input_repairs;
