-- 0021 corrections: an edit or deletion that lowers what an issued invoice billed becomes a Stripe credit
-- note against that invoice (closeout.payments.corrections), and a draft that nets negative becomes a
-- credit on the client's Stripe customer balance, instead of a negative line waiting on a later draft.
--
-- A correction is a document of its own, made of the draft line-entry rows it takes over: the negative
-- adjustment and credit rows the drafting computed (include/sql/billing/40_desired.sql) are closed on the
-- draft and the same rows, same entry versions and amounts, are recorded in correction_entries. So:
--   * invariant 1 counts them: an entry's billed amount is the sum of its current line entries on
--     invoices not voided PLUS its correction entries in corrections not voided
--     (closeout.credit_note_lines); the drafting counts them as billed too (40_desired, billing_frozen);
--   * a correction is never edited: its rows are final once recorded; a credit note voided in Stripe
--     voids the correction and its entries are judged again (billed again by the next drafting run).

-- What the client wants done with the part of a credit that exceeds what is still due on a paid (or
-- partly paid) invoice: refund it, put it on the customer's balance, or record it as settled outside Stripe.
ALTER TABLE closeout_data.billing_clients
    ADD COLUMN credit_note_policy text NOT NULL DEFAULT 'customer_balance'
        CHECK (credit_note_policy IN ('refund', 'customer_balance', 'out_of_band'));

CREATE OR REPLACE VIEW closeout.billing_clients AS
SELECT client_key, name, email, billing_period, currency, grouping, require_approval, payment_terms_days,
       rounding, publish_policy, updated_at, credit_note_policy
FROM closeout_data.billing_clients;

CREATE TABLE closeout_data.corrections (
    correction_id       text PRIMARY KEY,           -- cn/<invoice_id>/<seq> or cb/<client>/<currency>/<seq>
    kind                text NOT NULL CHECK (kind IN ('credit_note', 'customer_balance')),
    invoice_id          text REFERENCES closeout_data.invoices,  -- the issued invoice credited (credit_note)
    client_key          text NOT NULL,
    currency            text NOT NULL REFERENCES closeout_data.currencies (code),
    seq                 integer NOT NULL CHECK (seq >= 1),  -- the n-th correction of that invoice (or client)
    from_invoice_id     text NOT NULL REFERENCES closeout_data.invoices,  -- the draft its rows came from
    from_version        integer NOT NULL,           -- the draft version that no longer holds them
    amount_minor        bigint NOT NULL CHECK (amount_minor > 0),  -- credited, positive (as Stripe shows it)
    policy              text NOT NULL CHECK (policy IN ('refund', 'customer_balance', 'out_of_band')),
    state               text NOT NULL DEFAULT 'pending'
                        CHECK (state IN ('pending', 'issued', 'stopped', 'void')),
    stripe_object_id    text UNIQUE,                -- the credit note (cn_...) or balance transaction (cbtxn_...)
    stripe_number       text,
    pre_payment_amount_minor   bigint,
    post_payment_amount_minor  bigint,
    refund_amount_minor        bigint,
    credit_amount_minor        bigint,
    out_of_band_amount_minor   bigint,
    stop_reason         text,
    created_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    issued_at           timestamptz,
    voided_at           timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    CHECK ((kind = 'credit_note') = (invoice_id IS NOT NULL)),
    CHECK (state <> 'issued' OR stripe_object_id IS NOT NULL)
);
CREATE UNIQUE INDEX corrections_seq ON closeout_data.corrections (kind, coalesce(invoice_id, client_key), currency, seq);
CREATE INDEX corrections_open ON closeout_data.corrections (state) WHERE state IN ('pending', 'stopped');
CREATE INDEX corrections_invoice ON closeout_data.corrections (invoice_id);

-- The draft line-entry rows a correction took over: which entry version, at which rate, for how much
-- (signed as the drafting signs it: negative lowers what the entry is billed).
CREATE TABLE closeout_data.correction_entries (
    correction_id   text NOT NULL REFERENCES closeout_data.corrections,
    line_key        text COLLATE "C" NOT NULL,      -- the draft line it came from
    source          text COLLATE "C" NOT NULL,
    source_id       text COLLATE "C" NOT NULL,
    entry_version   integer NOT NULL,
    quantity        numeric NOT NULL,
    unit_rate       numeric NOT NULL,
    amount_minor    bigint NOT NULL,
    from_valid_from integer NOT NULL,               -- the draft row's valid_from (its identity there)
    PRIMARY KEY (correction_id, line_key, source, source_id)
);
-- the drafting looks an entry's corrections up by entry, as it does its line entries
CREATE INDEX correction_entries_by_entry ON closeout_data.correction_entries (source_id, source);

-- Correction entries are final: never changed, never deleted (a void correction is voided, not removed).
CREATE FUNCTION closeout_data.refuse_correction_entry_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'closeout: correction_entries are final (% refused)', TG_OP;
END $$;
CREATE TRIGGER correction_entries_final
    BEFORE UPDATE OR DELETE ON closeout_data.correction_entries
    FOR EACH STATEMENT EXECUTE FUNCTION closeout_data.refuse_correction_entry_change();

-- The Stripe outbox takes the new operations. The list is widened, whatever other migrations added.
DO $$
DECLARE
    constraint_name text;
    operations text[];
BEGIN
    SELECT c.conname, array(SELECT m[1] FROM regexp_matches(pg_get_constraintdef(c.oid), '([a-z_]+\.[a-z_]+)', 'g') m)
    INTO constraint_name, operations
    FROM pg_constraint c
    WHERE c.conrelid = 'closeout_data.stripe_outbox'::regclass AND c.contype = 'c'
      AND pg_get_constraintdef(c.oid) LIKE '%operation%';
    operations := array(SELECT DISTINCT unnest(operations || ARRAY['credit_note.create',
                                                                  'customer_balance.credit']) ORDER BY 1);
    EXECUTE format('ALTER TABLE closeout_data.stripe_outbox DROP CONSTRAINT %I', constraint_name);
    EXECUTE format('ALTER TABLE closeout_data.stripe_outbox ADD CONSTRAINT stripe_outbox_operation_check '
                   'CHECK (operation = ANY (%L::text[]))', operations);
END $$;

-- ---------------------------------------------------------------------------------------------
-- Public views
-- ---------------------------------------------------------------------------------------------
CREATE VIEW closeout.corrections AS
SELECT c.correction_id, c.kind, c.invoice_id, i.stripe_invoice_id, c.client_key, c.currency, c.seq,
       c.from_invoice_id, c.from_version, c.amount_minor, c.policy, c.state, c.stripe_object_id AS credit_note_id,
       c.stripe_number, c.pre_payment_amount_minor, c.post_payment_amount_minor, c.refund_amount_minor,
       c.credit_amount_minor, c.out_of_band_amount_minor, c.stop_reason, c.created_at, c.issued_at, c.voided_at,
       (SELECT count(*) FROM closeout_data.correction_entries e WHERE e.correction_id = c.correction_id)::integer
           AS entry_count
FROM closeout_data.corrections c
LEFT JOIN closeout_data.invoices i ON i.invoice_id = c.invoice_id;

-- Which entry version each correction credits, and for how much: with closeout.invoice_line_entries,
-- everything an entry is billed for (invariant 1 sums both, leaving out what is void).
CREATE VIEW closeout.credit_note_lines AS
-- billed: whether the row counts toward what its entry is billed (not when the correction, or the invoice it
-- credits, is void).
SELECT c.correction_id, c.kind, c.stripe_object_id AS credit_note_id, c.invoice_id, c.client_key, c.currency,
       c.state, e.source, e.source_id, e.entry_version AS version, e.quantity, e.unit_rate, e.amount_minor,
       e.line_key, c.from_invoice_id,
       (c.state <> 'void' AND coalesce(i.status, '') <> 'void') AS billed
FROM closeout_data.correction_entries e
JOIN closeout_data.corrections c ON c.correction_id = e.correction_id
LEFT JOIN closeout_data.invoices i ON i.invoice_id = c.invoice_id;
