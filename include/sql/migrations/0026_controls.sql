-- 0026 controls: the record of human decisions, and the warehouse roles that separate the pipeline from finance.
--
-- closeout.decisions (DESIGN.md): every human decision that moves money or releases a hold, with who asked
-- (requested_by) and who decided (decided_by). Invariant 11 is a CHECK here: an approval or a release is never
-- decided by the person who requested it. Rows are evidence: never updated, never deleted.
--
-- Roles (group roles, NOLOGIN; logins are granted membership, see docs/controls.md):
--   closeout_pipeline  what the DAGs need: read and write the pipeline's tables; it cannot release a payout
--                      hold (no UPDATE on payout_holds), cannot write decisions (no INSERT/UPDATE/DELETE on
--                      decisions) and cannot mark a payout batch approved except through
--                      record_payout_decision, which refuses a self-approval.
--   closeout_finance   read everything, release holds (release_payout_hold) and record decisions.
-- The functions are SECURITY DEFINER, owned by the migrating role (the owner of the tables): EXECUTE is the
-- privilege that says who may call them. CREATE ROLE needs CREATEROLE, not superuser; the migration skips roles
-- that exist, so it is idempotent across databases of one cluster (roles are cluster-wide).

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'closeout_pipeline') THEN
        CREATE ROLE closeout_pipeline NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'closeout_finance') THEN
        CREATE ROLE closeout_finance NOLOGIN;
    END IF;
END $$;

-- Who caused a hold: the triggering user of the reconciliation run that opened it (when Airflow knew one).
ALTER TABLE closeout_data.payout_holds ADD COLUMN caused_by text;

CREATE TABLE closeout_data.decisions (
    decision_id   bigserial PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('payout_batch', 'hold_release', 'held_drafts')),
    subject       text NOT NULL CHECK (subject <> ''),
    requested_by  text,
    decided_by    text NOT NULL CHECK (btrim(decided_by) <> ''),
    decided_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    outcome       text NOT NULL CHECK (outcome IN ('approved', 'rejected', 'released', 'refused', 'not_required')),
    reason        text,
    airflow_ref   jsonb NOT NULL DEFAULT '{}',
    -- invariant 11: what moves money is decided by an identified person other than the one who asked
    CONSTRAINT decisions_other_person CHECK (
        outcome NOT IN ('approved', 'released')
        OR (requested_by IS NOT NULL AND lower(btrim(decided_by)) <> lower(btrim(requested_by)))
    )
);
CREATE INDEX decisions_kind_subject ON closeout_data.decisions (kind, subject);

CREATE FUNCTION closeout_data.decisions_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'decision % is evidence: it cannot be changed or deleted', OLD.decision_id;
END $$;
CREATE TRIGGER decisions_guard BEFORE UPDATE OR DELETE ON closeout_data.decisions
    FOR EACH ROW EXECUTE FUNCTION closeout_data.decisions_guard();

-- Public contract (DESIGN.md): decision_id, kind, subject, requested_by, decided_by, decided_at, outcome, reason.
CREATE VIEW closeout.decisions AS
SELECT decision_id, kind, subject, requested_by, decided_by, decided_at, outcome, reason, airflow_ref
FROM closeout_data.decisions;

-- A payout batch decision taken in Airflow's Required Actions (or the deployment's approval switch): one
-- decision row per batch; approved (or not_required) batches are marked approved once, by the decider.
CREATE FUNCTION closeout_data.record_payout_decision(
    p_batch_ids text[], p_requested_by text, p_decided_by text, p_outcome text, p_reason text, p_ref jsonb
) RETURNS integer LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, closeout_data AS $$
DECLARE
    approved integer := 0;
BEGIN
    IF p_outcome NOT IN ('approved', 'rejected', 'refused', 'not_required') THEN
        RAISE EXCEPTION 'a payout batch decision is approved, rejected, refused or not_required, not %', p_outcome;
    END IF;
    INSERT INTO closeout_data.decisions (kind, subject, requested_by, decided_by, outcome, reason, airflow_ref)
    SELECT 'payout_batch', b, p_requested_by, p_decided_by, p_outcome, p_reason, coalesce(p_ref, '{}')
    FROM unnest(p_batch_ids) AS b;
    IF p_outcome IN ('approved', 'not_required') THEN
        UPDATE closeout_data.payout_batches
           SET approved_at = clock_timestamp(),
               approved_by = CASE WHEN p_outcome = 'approved' THEN 'approval: ' || p_decided_by ELSE p_decided_by END
         WHERE batch_id = ANY (p_batch_ids) AND approved_at IS NULL;
        GET DIAGNOSTICS approved = ROW_COUNT;
    END IF;
    RETURN approved;
END $$;

-- Releasing a payout hold: the only way a hold ends. Refuses the person who caused it.
CREATE FUNCTION closeout_data.release_payout_hold(p_hold_id bigint, p_by text, p_why text, p_ref jsonb)
RETURNS timestamptz LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, closeout_data AS $$
DECLARE
    h closeout_data.payout_holds%ROWTYPE;
    at timestamptz := clock_timestamp();
BEGIN
    IF coalesce(btrim(p_by), '') = '' OR coalesce(btrim(p_why), '') = '' THEN
        RAISE EXCEPTION 'releasing a payout hold needs who releases it and why';
    END IF;
    SELECT * INTO h FROM closeout_data.payout_holds WHERE hold_id = p_hold_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'payout hold % does not exist', p_hold_id;
    END IF;
    IF h.released_at IS NOT NULL THEN
        RAISE EXCEPTION 'payout hold % was already released at % by %', p_hold_id, h.released_at, h.released_by;
    END IF;
    IF h.caused_by IS NOT NULL AND lower(btrim(h.caused_by)) = lower(btrim(p_by)) THEN
        INSERT INTO closeout_data.decisions (kind, subject, requested_by, decided_by, outcome, reason, airflow_ref)
        VALUES ('hold_release', p_hold_id::text, h.caused_by, btrim(p_by), 'refused',
                'the person who caused the hold cannot release it', coalesce(p_ref, '{}'));
        RETURN NULL;
    END IF;
    UPDATE closeout_data.payout_holds SET released_at = at, released_by = btrim(p_by), release_reason = btrim(p_why)
     WHERE hold_id = p_hold_id;
    INSERT INTO closeout_data.decisions (kind, subject, requested_by, decided_by, decided_at, outcome, reason,
                                         airflow_ref)
    VALUES ('hold_release', p_hold_id::text, coalesce(h.caused_by, 'reconciliation ' || h.recon_run_id), btrim(p_by),
            at, 'released', btrim(p_why), coalesce(p_ref, '{}'));
    RETURN at;
END $$;

-- A decision on held drafts in a month-end close (approve them for publishing, or not).
CREATE FUNCTION closeout_data.record_decision(
    p_kind text, p_subject text, p_requested_by text, p_decided_by text, p_outcome text, p_reason text, p_ref jsonb
) RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, closeout_data AS $$
DECLARE
    id bigint;
BEGIN
    INSERT INTO closeout_data.decisions (kind, subject, requested_by, decided_by, outcome, reason, airflow_ref)
    VALUES (p_kind, p_subject, p_requested_by, p_decided_by, p_outcome, p_reason, coalesce(p_ref, '{}'))
    RETURNING decision_id INTO id;
    RETURN id;
END $$;

REVOKE ALL ON FUNCTION closeout_data.record_payout_decision(text[], text, text, text, text, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION closeout_data.release_payout_hold(bigint, text, text, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION closeout_data.record_decision(text, text, text, text, text, text, jsonb) FROM PUBLIC;

-- Grants. Both roles read everything.
GRANT USAGE ON SCHEMA closeout, closeout_data TO closeout_pipeline, closeout_finance;
GRANT SELECT ON ALL TABLES IN SCHEMA closeout, closeout_data TO closeout_pipeline, closeout_finance;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA closeout_data TO closeout_pipeline, closeout_finance;
-- The pipeline writes its tables ...
GRANT INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA closeout_data TO closeout_pipeline;
GRANT UPDATE ON ALL SEQUENCES IN SCHEMA closeout_data TO closeout_pipeline;
-- ... but not the controls: holds are opened by it and released by finance; decisions are finance's record;
-- a batch is marked approved only through record_payout_decision.
REVOKE UPDATE, DELETE ON closeout_data.payout_holds FROM closeout_pipeline;
REVOKE INSERT, UPDATE, DELETE ON closeout_data.decisions FROM closeout_pipeline;
REVOKE UPDATE ON closeout_data.payout_batches FROM closeout_pipeline;
GRANT UPDATE (planned_by, item_count, size_limit) ON closeout_data.payout_batches TO closeout_pipeline;
GRANT EXECUTE ON FUNCTION closeout_data.record_payout_decision(text[], text, text, text, text, jsonb)
    TO closeout_pipeline, closeout_finance;
-- Finance releases holds and records decisions, and writes nothing else directly.
GRANT EXECUTE ON FUNCTION closeout_data.release_payout_hold(bigint, text, text, jsonb) TO closeout_finance;
GRANT EXECUTE ON FUNCTION closeout_data.record_decision(text, text, text, text, text, text, jsonb)
    TO closeout_finance;
-- Tables and views later migrations create (as the same migrating role) get the same defaults.
ALTER DEFAULT PRIVILEGES IN SCHEMA closeout_data GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO closeout_pipeline;
ALTER DEFAULT PRIVILEGES IN SCHEMA closeout_data GRANT SELECT ON TABLES TO closeout_finance;
ALTER DEFAULT PRIVILEGES IN SCHEMA closeout_data GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO closeout_pipeline;
ALTER DEFAULT PRIVILEGES IN SCHEMA closeout_data GRANT USAGE, SELECT ON SEQUENCES TO closeout_finance;
ALTER DEFAULT PRIVILEGES IN SCHEMA closeout GRANT SELECT ON TABLES TO closeout_pipeline, closeout_finance;

-- Payouts refuse a payee currency whose minor unit Stripe reads differently from ISO 4217 (ISK, IQD and the
-- like), like publishing does: the work is reported as a planning exception instead of paid.
ALTER TABLE closeout_data.payout_exceptions DROP CONSTRAINT payout_exceptions_reason_check;
ALTER TABLE closeout_data.payout_exceptions ADD CONSTRAINT payout_exceptions_reason_check
    CHECK (reason IN ('no_payee_config', 'non_positive_amount', 'dispute_open', 'not_payable', 'currency_minor_unit'));
