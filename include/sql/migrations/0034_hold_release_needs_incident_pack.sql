-- Releasing a payout hold requires its incident pack (issue 15 item 7): enforced where the release happens, in
-- the warehouse, not only by `python -m closeout.gate release`, so a finance login calling the function directly
-- cannot end a hold an auditor has no record of. The pack is written when the hold opens (closeout.gate.holds);
-- when the artifact store refused it then, `python -m closeout.evidence incident --hold-id N` builds it late.
-- Everything else is 0026's function unchanged (grants and owner are kept by CREATE OR REPLACE).
CREATE OR REPLACE FUNCTION closeout_data.release_payout_hold(p_hold_id bigint, p_by text, p_why text, p_ref jsonb)
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
    IF coalesce(btrim(h.evidence_pack), '') = '' THEN
        RAISE EXCEPTION 'payout hold % has no incident pack: build it with python -m closeout.evidence incident '
                        '--hold-id %, then release', p_hold_id, p_hold_id;
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
