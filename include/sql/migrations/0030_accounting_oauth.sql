-- 0030 accounting API foundation (issue 17 items 1 and 6): where the rotating OAuth tokens of the accounting
-- systems live, and the outbox every write to them goes through.
--
-- QuickBooks Online and Xero hand out a new refresh token with (almost) every refresh and retire the old one.
-- Losing the newest means a person must reconnect the company, so the newest is kept here, durably, in one
-- row per Airflow connection, and every refresh happens inside a transaction that holds that row FOR UPDATE:
-- two tasks never refresh the same token twice (the second waits, then finds a fresh access token), and a
-- worker killed before its commit leaves the previous token in place (what the vendor's grace then allows is
-- written in docs/accounting-api.md).
--
-- This is the ONLY table that holds accounting secrets. closeout_finance, who may read everything else,
-- may not read it.

CREATE TABLE closeout_data.accounting_oauth (
    conn_id             text PRIMARY KEY,
    system              text NOT NULL CHECK (system IN ('quickbooks', 'xero')),
    -- which company (QuickBooks realm id) or organisation (Xero tenant id) the tokens open
    company_id          text NOT NULL,
    refresh_token       text NOT NULL,
    -- sha256 of the refresh token the Airflow connection held when this row was seeded from it: when a person
    -- reconnects the company and puts a new first token into the connection, the hash changes and the row is
    -- re-seeded from the connection instead of keeping the dead chain
    seed_sha256         text NOT NULL,
    access_token        text,
    access_expires_at   timestamptz,
    refresh_expires_at  timestamptz,
    refreshed_at        timestamptz,
    refreshes           bigint NOT NULL DEFAULT 0,
    -- the last refresh failure, masked (never a token): 'invalid_grant: reconnect the company' and the like
    last_error          text,
    last_error_at       timestamptz,
    created_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at          timestamptz NOT NULL DEFAULT clock_timestamp()
);

REVOKE ALL ON closeout_data.accounting_oauth FROM closeout_finance;

-- Every mutating call to an accounting API, recorded BEFORE the call with the idempotency key derived from
-- business identity (QuickBooks requestid, Xero Idempotency-Key), completed after it. A retry after a timeout
-- finds its row and sends the same key, so the vendor replays the original answer instead of creating again.
-- payload_sha256 guards the key: the same business identity with a different body is refused before sending,
-- because the vendor would silently answer with the first body's object.
CREATE TABLE closeout_data.accounting_api_outbox (
    outbox_id       bigserial PRIMARY KEY,
    system          text NOT NULL CHECK (system IN ('quickbooks', 'xero')),
    company_id      text NOT NULL,
    request_id      text NOT NULL,
    operation       text NOT NULL,
    business_ref    text NOT NULL,
    payload_sha256  text NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    http_status     integer,
    external_id     text,
    sync_token      text,
    replayed        boolean NOT NULL DEFAULT false,
    error           text,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_sent_at    timestamptz,
    completed_at    timestamptz,
    UNIQUE (system, company_id, request_id)
);
CREATE INDEX accounting_api_outbox_open ON closeout_data.accounting_api_outbox (system, company_id)
    WHERE status <> 'succeeded';

GRANT SELECT ON closeout_data.accounting_api_outbox TO closeout_finance;
