-- 0039 accounting push (issue 17 item 4, invariant 9): the books pushed to QuickBooks Online / Xero exactly once.
--
-- * closeout_data.accounting_links gains the pushed object's total and currency (invariant 9 compares them with
--   what the accounting system holds); invoices, payments and journals are linked there like customers.
-- * closeout_data.accounting_push_batches: every batch is written here, with its exact body, BEFORE it is sent.
--   A batch whose answer never came (timeout, killed worker) is sent again byte for byte under the same
--   requestid / Idempotency-Key, so the vendor replays it; once the key may have expired (older than the
--   connection's key lifetime) its objects are looked up by their reference there instead of being sent again.
-- * closeout_data.accounting_push_exceptions: a record that cannot go (currency not enabled, missing tax code or
--   account mapping, closed period / lock date, customer link under review, no ledger rate) is held with its
--   reason; the rest goes through. Every run tries held records again; a record that goes is resolved.

ALTER TABLE closeout_data.accounting_links ADD COLUMN IF NOT EXISTS total_minor bigint;
ALTER TABLE closeout_data.accounting_links ADD COLUMN IF NOT EXISTS currency text;
-- 'pushed': closeout created the object through the push (its batch answered); 'reference': found there by its
-- reference after the idempotency key's lifetime
ALTER TABLE closeout_data.accounting_links DROP CONSTRAINT accounting_links_matched_by_check;
ALTER TABLE closeout_data.accounting_links ADD CONSTRAINT accounting_links_matched_by_check
    CHECK (matched_by IN ('external_id', 'email', 'name', 'created', 'finance', 'pushed', 'reference'));

CREATE OR REPLACE VIEW closeout.accounting_links AS
SELECT system, object_kind, closeout_ref, external_id, status, synced_at, company_id, remote_version, matched_by,
       linked_at, updated_at, detail, review_id, total_minor, currency
FROM closeout_data.accounting_links;

CREATE TABLE closeout_data.accounting_push_batches (
    batch_id      bigserial PRIMARY KEY,
    system        text NOT NULL CHECK (system IN ('quickbooks', 'xero')),
    company_id    text NOT NULL,
    object_kind   text NOT NULL CHECK (object_kind IN ('invoice', 'credit_note', 'payment', 'deposit', 'bill',
                                                       'journal')),
    -- the outbox's business reference of the call (requestid / Idempotency-Key derive from it)
    business_ref  text NOT NULL,
    -- [{"ref", "bid", "lookup", "total_minor", "currency"}]: what each element is and how to find it there
    items         jsonb NOT NULL,
    -- the exact body sent (resent byte for byte while the key lives)
    payload       jsonb NOT NULL,
    state         text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'answered', 'failed', 'looked_up')),
    sends         integer NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    answered_at   timestamptz,
    error         text,
    UNIQUE (system, company_id, business_ref)
);
CREATE INDEX accounting_push_batches_pending ON closeout_data.accounting_push_batches (system, company_id)
    WHERE state = 'pending';

CREATE TABLE closeout_data.accounting_push_exceptions (
    exception_id   bigserial PRIMARY KEY,
    system         text NOT NULL CHECK (system IN ('quickbooks', 'xero')),
    company_id     text NOT NULL,
    object_kind    text NOT NULL,
    closeout_ref   text NOT NULL,
    reason         text NOT NULL CHECK (reason IN ('currency_not_enabled', 'tax_code', 'account_mapping',
                                                   'closed_period', 'customer_link', 'no_ledger_rate',
                                                   'invoice_not_pushed', 'refused')),
    detail         text NOT NULL,
    currency       text,
    total_minor    bigint,
    attempts       integer NOT NULL DEFAULT 1,
    first_held_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_held_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    resolved_at    timestamptz,
    UNIQUE (system, company_id, object_kind, closeout_ref)
);

-- What finance looks at: every record held back from the books and why (resolved ones stay, with resolved_at).
CREATE VIEW closeout.accounting_push_exceptions AS
SELECT system, company_id, object_kind, closeout_ref, reason, detail, currency, total_minor, attempts,
       first_held_at, last_held_at, resolved_at, resolved_at IS NULL AS open
FROM closeout_data.accounting_push_exceptions;
