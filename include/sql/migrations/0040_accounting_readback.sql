-- 0040 accounting read-back (issue 17 item 5, invariant 9): what QuickBooks Online and Xero themselves say, read
-- through their APIs (QuickBooks change data capture and reports, Xero If-Modified-Since listings and reports).
--
-- * closeout_data.accounting_ingests gains ``source``: 'file' (a person's downloaded export, the file mode) or
--   'quickbooks_api' / 'xero_api' (a read-back). API ingests land in the same tables the accounting checks already
--   read (accounting_xero_invoice_lines for invoices, accounting_gl_rows for the general ledger), so the checks
--   compare with what the accounting system says now, including an accountant's edits there.
-- * closeout_data.accounting_remote_objects: the read-back copy, one row per object there (deleted ones kept, marked),
--   with its document number / reference, total and currency in minor units and its version.
-- * closeout_data.accounting_readback_cursors: where each incremental read continues (QuickBooks changedSince, Xero
--   If-Modified-Since), per system, company and stream.
-- * closeout_data.accounting_readback_runs: one row per read-back (requests, objects read and changed, the ingests
--   it made); the accounting_links check is applicable once a read-back of the system has succeeded.
-- * closeout_data.accounting_trial_balances: the trial balance report of each read-back, per account.
--
-- The pushed object's total and currency on accounting_links are what invariant 9 compares with; the push (0039)
-- adds them too: IF NOT EXISTS keeps this migration independent of it.

ALTER TABLE closeout_data.accounting_links ADD COLUMN IF NOT EXISTS total_minor bigint;
ALTER TABLE closeout_data.accounting_links ADD COLUMN IF NOT EXISTS currency text;

ALTER TABLE closeout_data.accounting_ingests ADD COLUMN source text NOT NULL DEFAULT 'file'
    CHECK (source IN ('file', 'quickbooks_api', 'xero_api'));

CREATE OR REPLACE VIEW closeout.accounting_ingests AS
SELECT ingest_id, system, kind, file_name, file_sha256, currency, report_range, ingested_at, rows_loaded,
       rows_quarantined, source
FROM closeout_data.accounting_ingests;

CREATE TABLE closeout_data.accounting_readback_runs (
    run_id              bigserial PRIMARY KEY,
    system              text NOT NULL CHECK (system IN ('quickbooks', 'xero')),
    company_id          text NOT NULL,
    airflow_run_id      text,
    period              text CHECK (period ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    -- 'full' (no usable cursor: everything listed) or 'incremental'
    mode                text NOT NULL CHECK (mode IN ('full', 'incremental')),
    started_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at         timestamptz,
    status              text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'succeeded', 'failed')),
    requests            integer NOT NULL DEFAULT 0,
    objects_read        integer NOT NULL DEFAULT 0,
    objects_changed     integer NOT NULL DEFAULT 0,
    invoices_ingest_id  bigint REFERENCES closeout_data.accounting_ingests,
    ledger_ingest_id    bigint REFERENCES closeout_data.accounting_ingests,
    cursors             jsonb NOT NULL DEFAULT '{}',
    error               text
);
CREATE INDEX accounting_readback_runs_system ON closeout_data.accounting_readback_runs (system, company_id, run_id);

CREATE TABLE closeout_data.accounting_readback_cursors (
    system      text NOT NULL CHECK (system IN ('quickbooks', 'xero')),
    company_id  text NOT NULL,
    -- QuickBooks: 'cdc' (one changedSince for every entity); Xero: the listing ('Invoices', 'Payments', ...)
    stream      text NOT NULL,
    cursor      timestamptz NOT NULL,
    run_id      bigint REFERENCES closeout_data.accounting_readback_runs,
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (system, company_id, stream)
);

CREATE TABLE closeout_data.accounting_remote_objects (
    system             text NOT NULL CHECK (system IN ('quickbooks', 'xero')),
    company_id         text NOT NULL,
    -- QuickBooks entity (Invoice, Payment, ...) / Xero listing (Invoices, Payments, ...)
    entity             text NOT NULL,
    external_id        text NOT NULL,
    -- closeout's kind: customer, invoice, credit_note, payment, deposit, bill, journal (NULL: not one closeout pushes)
    object_kind        text,
    -- the document number / reference closeout gave it (QuickBooks DocNumber, Xero InvoiceNumber / Reference ...)
    reference          text,
    txn_date           date,
    currency           text,
    total_minor        bigint,
    status             text,
    deleted            boolean NOT NULL DEFAULT false,
    -- QuickBooks SyncToken / Xero UpdatedDateUTC: a new one is a change
    remote_version     text,
    remote_updated_at  timestamptz,
    raw                jsonb NOT NULL,
    first_run_id       bigint NOT NULL REFERENCES closeout_data.accounting_readback_runs,
    run_id             bigint NOT NULL REFERENCES closeout_data.accounting_readback_runs,
    read_at            timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (system, company_id, entity, external_id)
);
CREATE INDEX accounting_remote_objects_reference
    ON closeout_data.accounting_remote_objects (system, company_id, object_kind, reference);

CREATE TABLE closeout_data.accounting_trial_balances (
    run_id        bigint NOT NULL REFERENCES closeout_data.accounting_readback_runs,
    line_no       integer NOT NULL,
    as_of         date NOT NULL,
    account       text NOT NULL,
    account_id    text,
    currency      text NOT NULL,
    debit_minor   bigint NOT NULL DEFAULT 0,
    credit_minor  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, line_no)
);

CREATE VIEW closeout.accounting_readback_runs AS
SELECT run_id, system, company_id, airflow_run_id, period, mode, started_at, finished_at, status, requests,
       objects_read, objects_changed, invoices_ingest_id, ledger_ingest_id, cursors, error
FROM closeout_data.accounting_readback_runs;

CREATE VIEW closeout.accounting_remote_objects AS
SELECT system, company_id, entity, external_id, object_kind, reference, txn_date, currency, total_minor, status,
       deleted, remote_version, remote_updated_at, read_at, run_id
FROM closeout_data.accounting_remote_objects;

CREATE VIEW closeout.accounting_trial_balances AS
SELECT r.system, r.company_id, t.run_id, t.as_of, t.line_no, t.account, t.account_id, t.currency, t.debit_minor,
       t.credit_minor
FROM closeout_data.accounting_trial_balances t
JOIN closeout_data.accounting_readback_runs r USING (run_id);

GRANT SELECT ON closeout.accounting_readback_runs, closeout.accounting_remote_objects,
    closeout.accounting_trial_balances TO closeout_pipeline, closeout_finance;
