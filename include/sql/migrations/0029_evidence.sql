-- 0029 evidence: the API calls behind every record in one public view, and where each payout hold's incident
-- pack is (issue 15 item 7; docs/evidence.md).
--
-- closeout.sync_requests: one row per call closeout made to an outside API that produced or changed a record,
-- as closeout already records them:
--   * tracker_request: every HTTP call of a tracker sync (retries included), written by the sync's page loop in
--     the page's own transaction (closeout_data.sync_requests, 0001); url holds no credential (masked on write);
--   * stripe_outbox:   every mutating Stripe call of publishing (customer, invoice, lines, finalize), with its
--     idempotency key, recorded before the call and completed after it (closeout_data.stripe_outbox, 0005);
--   * payout_transfer: every Stripe transfer of a payout item, with its idempotency key (payout_items, 0009);
--   * stripe_run:      Stripe's read calls (events backfill, cash sync, lookups) are counted per task run, not
--     recorded one by one: one row per payment run with `requests` = the calls it made (payment_runs, 0005).
-- `path` is the request's path and query without scheme and host (the host is configuration), `requests` is 1
-- for a single call. The view reads base tables only: nothing new is written per call.
--
-- payout_holds.evidence_pack: the artifact location of the hold's incident pack (its index.json), recorded by
-- closeout_data.record_hold_evidence, which both roles may call: the pipeline writes the pack when the hold is
-- opened and may not otherwise update a hold (0026). Releasing a hold through `python -m closeout.gate release`
-- requires the pack to exist at that location.

ALTER TABLE closeout_data.payout_holds
    ADD COLUMN evidence_pack text,
    ADD COLUMN evidence_pack_at timestamptz;

CREATE FUNCTION closeout_data.record_hold_evidence(p_hold_id bigint, p_location text)
RETURNS timestamptz LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, closeout_data AS $$
DECLARE
    at timestamptz := clock_timestamp();
BEGIN
    IF coalesce(btrim(p_location), '') = '' THEN
        RAISE EXCEPTION 'payout hold %: an incident pack needs a location', p_hold_id;
    END IF;
    UPDATE closeout_data.payout_holds SET evidence_pack = p_location, evidence_pack_at = at
     WHERE hold_id = p_hold_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'payout hold % does not exist', p_hold_id;
    END IF;
    RETURN at;
END $$;
REVOKE ALL ON FUNCTION closeout_data.record_hold_evidence(bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION closeout_data.record_hold_evidence(bigint, text) TO closeout_pipeline, closeout_finance;

-- Public contract columns unchanged; appended: caused_by (0026) and the incident pack.
CREATE OR REPLACE VIEW closeout.payout_holds AS
SELECT hold_id, opened_at, reason, recon_run_id, released_at, released_by,
       release_reason, check_name, period, cause_key, details,
       caused_by, evidence_pack, evidence_pack_at
FROM closeout_data.payout_holds;

CREATE VIEW closeout.sync_requests AS
SELECT 'tracker_request'::text AS record_kind, s.source AS system, r.sync_run_id, NULL::bigint AS payment_run_id,
       r.seq, r.phase, r.method,
       regexp_replace(r.url, '^[A-Za-z][A-Za-z0-9+.-]*://[^/]*', '') AS path,
       r.status, r.outcome, r.records, 1 AS requests,
       r.requested_at AS started_at, r.requested_at + make_interval(secs => r.duration_ms / 1000.0) AS finished_at,
       NULL::text AS idempotency_key, NULL::text AS object_id, NULL::text AS invoice_id, s.airflow_run_ids
FROM closeout_data.sync_requests r
JOIN closeout_data.sync_runs s USING (sync_run_id)
UNION ALL
SELECT 'stripe_outbox', 'stripe', NULL, NULL, o.part, o.operation, 'POST',
       CASE o.operation
           WHEN 'customer.create' THEN '/v1/customers'
           WHEN 'invoice.create' THEN '/v1/invoices'
           WHEN 'invoice.add_lines' THEN '/v1/invoices/' || coalesce(p.stripe_invoice_id, '{invoice}') || '/add_lines'
           WHEN 'invoice.finalize' THEN '/v1/invoices/' || coalesce(p.stripe_invoice_id, '{invoice}') || '/finalize'
       END,
       o.http_status, o.status || coalesce(':' || o.resolved_by, ''), NULL, o.attempts,
       o.created_at, o.completed_at, o.idempotency_key, o.stripe_object_id, o.invoice_id, NULL
FROM closeout_data.stripe_outbox o
LEFT JOIN closeout_data.stripe_publications p ON p.invoice_id = o.invoice_id
UNION ALL
SELECT 'payout_transfer', 'stripe', NULL, NULL, NULL, 'transfer.create', 'POST', '/v1/transfers',
       NULL, i.status || coalesce(':' || i.found_by, ''), NULL, i.attempts,
       coalesce(i.first_sent_at, i.planned_at), coalesce(i.transferred_at, i.last_sent_at), i.idempotency_key,
       i.external_id, i.invoice_id, NULL
FROM closeout_data.payout_items i
UNION ALL
SELECT 'stripe_run', 'stripe', NULL, r.payment_run_id, NULL, r.step, NULL, NULL,
       NULL, r.status, NULL, r.requests,
       r.started_at, r.finished_at, NULL, NULL, NULL,
       CASE WHEN r.airflow_run_id IS NULL THEN '{}'::text[] ELSE ARRAY[r.airflow_run_id] END
FROM closeout_data.payment_runs r;

GRANT SELECT ON closeout.sync_requests, closeout.payout_holds TO closeout_pipeline, closeout_finance;
