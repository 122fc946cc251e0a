-- 0031 held drafts approval: the month-end close asks the finance group to approve the period's held drafts
-- (issue 15 item 6) instead of approving them itself as "close run N".
--
-- The close's approval task runs as the pipeline's login (closeout_pipeline), which may not write
-- closeout.decisions (0026). Like closeout_data.record_payout_decision for payout batches, this function is the one
-- way the pipeline records a decision on held drafts: one decision row per draft, and, for an approval, the draft's
-- version marked approved in the same transaction, so no held draft is ever approved without its decision row.
-- Invariant 11 stays a CHECK on closeout_data.decisions (decisions_other_person): an 'approved' row whose decider is
-- the requester (the close's triggering user) is refused and nothing is approved.

CREATE FUNCTION closeout_data.record_held_drafts_decision(
    p_drafts jsonb,  -- [{"invoice_id": "...", "version": N}, ...]: the drafts, and the versions the decider saw
    p_requested_by text, p_decided_by text, p_outcome text, p_reason text, p_ref jsonb
) RETURNS TABLE (invoice_id text, decision_id bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, closeout_data AS $$
#variable_conflict use_column
DECLARE
    d record;
    id bigint;
    current_version integer;
    current_status text;
BEGIN
    IF p_outcome NOT IN ('approved', 'rejected', 'refused', 'not_required') THEN
        RAISE EXCEPTION 'a held drafts decision is approved, rejected, refused or not_required, not %', p_outcome;
    END IF;
    FOR d IN SELECT x->>'invoice_id' AS inv, (x->>'version')::integer AS ver
             FROM jsonb_array_elements(coalesce(p_drafts, '[]')) AS x ORDER BY 1 LOOP
        INSERT INTO closeout_data.decisions (kind, subject, requested_by, decided_by, outcome, reason, airflow_ref)
        VALUES ('held_drafts', d.inv, p_requested_by, p_decided_by, p_outcome, p_reason,
                coalesce(p_ref, '{}') || jsonb_build_object('version', d.ver))
        RETURNING decisions.decision_id INTO id;
        IF p_outcome IN ('approved', 'not_required') THEN
            SELECT i.version, i.status INTO current_version, current_status
            FROM closeout_data.invoices i WHERE i.invoice_id = d.inv FOR UPDATE;
            IF NOT FOUND OR current_status <> 'draft' OR current_version <> d.ver THEN
                RAISE EXCEPTION 'held draft % is % version %, not the draft version % the decision was asked about',
                    d.inv, coalesce(current_status, 'missing'), current_version, d.ver;
            END IF;
            UPDATE closeout_data.invoices i
               SET approved_version = d.ver, approved_at = clock_timestamp(),
                   approved_by = CASE WHEN p_outcome = 'approved' THEN 'approval: ' || btrim(p_decided_by)
                                      ELSE p_decided_by END,
                   approval_note = 'decision ' || id || ' (closeout.decisions)'
             WHERE i.invoice_id = d.inv;
        END IF;
        invoice_id := d.inv;
        decision_id := id;
        RETURN NEXT;
    END LOOP;
END $$;

REVOKE ALL ON FUNCTION closeout_data.record_held_drafts_decision(jsonb, text, text, text, text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION closeout_data.record_held_drafts_decision(jsonb, text, text, text, text, jsonb)
    TO closeout_pipeline, closeout_finance;
