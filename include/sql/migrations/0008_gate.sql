-- 0008 gate: payout holds and the record of finance alerts sent for them.
--
-- A hold is opened when a reconciliation check breaches its tolerance and stays open until a named
-- person releases it with a reason: a later green reconcile does not release it (the evidence of the
-- breach still needs a human decision). The first task of closeout_payouts refuses to run while any
-- hold is open, whatever the DAG's paused state (a pause is no lock: the UI unpauses on trigger).
--
-- cause_key identifies the cause (check and period): at most one open hold per cause, enforced by a
-- partial unique index, so a retried or repeated breach finds the open hold instead of adding one.

CREATE TABLE closeout_data.payout_holds (
    hold_id         bigserial PRIMARY KEY,
    opened_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    reason          text NOT NULL CHECK (reason <> ''),
    recon_run_id    text NOT NULL,
    check_name      text NOT NULL CHECK (check_name <> ''),
    period          text,
    cause_key       text NOT NULL CHECK (cause_key <> ''),
    details         jsonb NOT NULL DEFAULT '{}',
    released_at     timestamptz,
    released_by     text,
    release_reason  text,
    -- a release is recorded whole (who, when, why) or not at all
    CONSTRAINT payout_holds_release_whole CHECK (
        (released_at IS NULL AND released_by IS NULL AND release_reason IS NULL)
        OR (released_at IS NOT NULL AND coalesce(btrim(released_by), '') <> ''
            AND coalesce(btrim(release_reason), '') <> '')
    )
);
CREATE UNIQUE INDEX payout_holds_one_open_per_cause ON closeout_data.payout_holds (cause_key)
    WHERE released_at IS NULL;

-- Holds are evidence: never deleted, and the only edit allowed is the release of an open hold.
CREATE FUNCTION closeout_data.payout_holds_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'payout hold % cannot be deleted; release it instead', OLD.hold_id;
    END IF;
    IF OLD.released_at IS NOT NULL THEN
        RAISE EXCEPTION 'payout hold % was already released at % by %', OLD.hold_id, OLD.released_at, OLD.released_by;
    END IF;
    IF (NEW.hold_id, NEW.opened_at, NEW.reason, NEW.recon_run_id, NEW.check_name, NEW.period, NEW.cause_key,
        NEW.details) IS DISTINCT FROM
       (OLD.hold_id, OLD.opened_at, OLD.reason, OLD.recon_run_id, OLD.check_name, OLD.period, OLD.cause_key,
        OLD.details) THEN
        RAISE EXCEPTION 'payout hold % is evidence: only its release may be recorded', OLD.hold_id;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER payout_holds_guard BEFORE UPDATE OR DELETE ON closeout_data.payout_holds
    FOR EACH ROW EXECUTE FUNCTION closeout_data.payout_holds_guard();
CREATE FUNCTION closeout_data.payout_holds_no_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'payout holds cannot be truncated';
END $$;
CREATE TRIGGER payout_holds_no_truncate BEFORE TRUNCATE ON closeout_data.payout_holds
    FOR EACH STATEMENT EXECUTE FUNCTION closeout_data.payout_holds_no_truncate();

-- One row per hold and channel once the alert went out: a repeat of the same open cause finds the
-- rows and sends nothing; a channel that failed has no row and is retried on the next breach call.
CREATE TABLE closeout_data.finance_alerts (
    hold_id    bigint NOT NULL REFERENCES closeout_data.payout_holds,
    channel    text NOT NULL CHECK (channel IN ('email', 'webhook')),
    cause_key  text NOT NULL,
    subject    text NOT NULL,
    sent_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (hold_id, channel)
);

-- Public contract (DESIGN.md): hold_id, opened_at, reason, recon_run_id, released_at, released_by.
CREATE VIEW closeout.payout_holds AS
SELECT hold_id, opened_at, reason, recon_run_id, released_at, released_by,
       release_reason, check_name, period, cause_key, details
FROM closeout_data.payout_holds;

CREATE VIEW closeout.finance_alerts AS
SELECT hold_id, channel, cause_key, subject, sent_at
FROM closeout_data.finance_alerts;
