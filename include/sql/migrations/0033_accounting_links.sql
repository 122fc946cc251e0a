-- 0033 accounting links (issue 17 item 2, invariant 9): which QuickBooks customer / Xero contact (and later
-- invoice, payment, ...) each closeout object is, with a unique key both ways, so nothing is ever created twice.
--
-- A client not yet linked is matched to an existing customer by a configured external id, then e-mail, then exact
-- name (closeout.accounting.links). Exactly one match links it; an ambiguous or near match (case, whitespace or
-- punctuation only) opens a review finance resolves (python -m closeout.accounting links resolve); no match creates
-- the customer through the hook's outbox (requestid / Idempotency-Key from the client id). A link, once made, is
-- updated in place (its SyncToken / version) and never re-created.

CREATE TABLE closeout_data.accounting_links (
    link_id         bigserial PRIMARY KEY,
    system          text NOT NULL CHECK (system IN ('quickbooks', 'xero')),
    -- QuickBooks realm id / Xero tenant id
    company_id      text NOT NULL,
    object_kind     text NOT NULL CHECK (object_kind IN ('customer', 'invoice', 'credit_note', 'payment', 'deposit',
                                                         'bill', 'journal')),
    closeout_ref    text NOT NULL CHECK (closeout_ref <> ''),
    external_id     text NOT NULL CHECK (external_id <> ''),
    -- QuickBooks SyncToken / Xero UpdatedDateUTC as last seen after closeout's own read or write
    remote_version  text,
    status          text NOT NULL DEFAULT 'linked' CHECK (status IN ('linked', 'update_failed')),
    -- how the link was made: 'external_id', 'email', 'name' (matched), 'created' (closeout created it), 'finance'
    matched_by      text NOT NULL CHECK (matched_by IN ('external_id', 'email', 'name', 'created', 'finance')),
    -- sha256 of the fields closeout keeps current there (name, e-mail); a change means an update in place
    pushed_sha256   text,
    detail          text,
    review_id       bigint,
    linked_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    synced_at       timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (system, company_id, object_kind, closeout_ref),
    UNIQUE (system, company_id, object_kind, external_id)
);

-- External ids finance or the platform team configure up front: "client acme is QuickBooks customer 58" (or a Xero
-- ContactID / ContactNumber). Checked before e-mail and name.
CREATE TABLE closeout_data.accounting_client_refs (
    system       text NOT NULL CHECK (system IN ('quickbooks', 'xero')),
    client_key   text NOT NULL,
    external_id  text NOT NULL CHECK (external_id <> ''),
    note         text,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (system, client_key)
);

-- What waits for finance: a client that matches several customers, or only nearly matches one, is never created.
-- state: open (waiting), create (finance said: create a new one; the next run does, through the outbox), done.
CREATE TABLE closeout_data.accounting_link_reviews (
    review_id     bigserial PRIMARY KEY,
    system        text NOT NULL CHECK (system IN ('quickbooks', 'xero')),
    company_id    text NOT NULL,
    object_kind   text NOT NULL CHECK (object_kind IN ('customer', 'invoice', 'credit_note', 'payment', 'deposit',
                                                       'bill', 'journal')),
    closeout_ref  text NOT NULL,
    reason        text NOT NULL CHECK (reason IN ('ambiguous', 'near_match', 'external_id_not_found',
                                                  'create_refused')),
    detail        text NOT NULL,
    -- [{"id", "name", "email", "why"}] as read from the accounting system when the review was opened
    candidates    jsonb NOT NULL DEFAULT '[]',
    state         text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'create', 'done')),
    resolution    text CHECK (resolution IN ('linked', 'created')),
    external_id   text,
    decision_id   bigint,
    decided_by    text,
    opened_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    decided_at    timestamptz,
    closed_at     timestamptz
);
CREATE UNIQUE INDEX accounting_link_reviews_one_live ON closeout_data.accounting_link_reviews
    (system, company_id, object_kind, closeout_ref) WHERE state <> 'done';

-- A finance decision on a review is a row in closeout.decisions.
ALTER TABLE closeout_data.decisions DROP CONSTRAINT decisions_kind_check;
ALTER TABLE closeout_data.decisions ADD CONSTRAINT decisions_kind_check
    CHECK (kind IN ('payout_batch', 'hold_release', 'held_drafts', 'accounting_link'));

-- Finance resolves a review: link it to an existing customer (p_external_id) or have closeout create one
-- (p_external_id NULL). One transaction: the decision, the review's state and, for a link, the link itself.
-- The pipeline (closeout_accounting_links) asked; the identified finance person decides.
CREATE FUNCTION closeout_data.resolve_accounting_link_review(
    p_review_id bigint, p_external_id text, p_decided_by text, p_reason text, p_ref jsonb
) RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, closeout_data AS $$
DECLARE
    r closeout_data.accounting_link_reviews%ROWTYPE;
    id bigint;
    taken text;
BEGIN
    IF coalesce(btrim(p_decided_by), '') = '' THEN
        RAISE EXCEPTION 'resolving an accounting link review needs the identified person';
    END IF;
    SELECT * INTO r FROM closeout_data.accounting_link_reviews WHERE review_id = p_review_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'accounting link review % does not exist', p_review_id;
    END IF;
    IF r.state <> 'open' THEN
        RAISE EXCEPTION 'accounting link review % is already decided (%)', p_review_id, r.state;
    END IF;
    IF p_external_id IS NOT NULL THEN
        SELECT closeout_ref INTO taken FROM closeout_data.accounting_links
        WHERE system = r.system AND company_id = r.company_id AND object_kind = r.object_kind
          AND external_id = p_external_id;
        IF FOUND THEN
            RAISE EXCEPTION '% % % is already linked to %', r.system, r.object_kind, p_external_id, taken;
        END IF;
    END IF;
    INSERT INTO closeout_data.decisions (kind, subject, requested_by, decided_by, outcome, reason, airflow_ref)
    VALUES ('accounting_link', r.system || ':' || r.object_kind || ':' || r.closeout_ref, 'closeout_accounting_links',
            btrim(p_decided_by), 'approved',
            coalesce(nullif(btrim(p_reason), ''), CASE WHEN p_external_id IS NULL THEN 'create a new ' || r.object_kind
                     ELSE 'link to ' || p_external_id END),
            coalesce(p_ref, '{}') || jsonb_build_object('review_id', r.review_id, 'external_id', p_external_id))
    RETURNING decision_id INTO id;
    IF p_external_id IS NULL THEN
        UPDATE closeout_data.accounting_link_reviews
           SET state = 'create', decision_id = id, decided_by = btrim(p_decided_by), decided_at = clock_timestamp()
         WHERE review_id = r.review_id;
    ELSE
        INSERT INTO closeout_data.accounting_links (system, company_id, object_kind, closeout_ref, external_id,
                                                    matched_by, review_id, detail)
        VALUES (r.system, r.company_id, r.object_kind, r.closeout_ref, p_external_id, 'finance', r.review_id,
                'decision ' || id || ' (closeout.decisions)');
        UPDATE closeout_data.accounting_link_reviews
           SET state = 'done', resolution = 'linked', external_id = p_external_id, decision_id = id,
               decided_by = btrim(p_decided_by), decided_at = clock_timestamp(), closed_at = clock_timestamp()
         WHERE review_id = r.review_id;
    END IF;
    RETURN id;
END $$;
REVOKE ALL ON FUNCTION closeout_data.resolve_accounting_link_review(bigint, text, text, text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION closeout_data.resolve_accounting_link_review(bigint, text, text, text, jsonb)
    TO closeout_finance;

-- Public contract (DESIGN.md): system, object_kind, closeout_ref, external_id, status, synced_at.
CREATE VIEW closeout.accounting_links AS
SELECT system, object_kind, closeout_ref, external_id, status, synced_at, company_id, remote_version, matched_by,
       linked_at, updated_at, detail, review_id
FROM closeout_data.accounting_links;

CREATE VIEW closeout.accounting_link_reviews AS
SELECT review_id, system, company_id, object_kind, closeout_ref, reason, detail, candidates, state, resolution,
       external_id, decision_id, decided_by, opened_at, decided_at, closed_at
FROM closeout_data.accounting_link_reviews;
