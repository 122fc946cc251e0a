-- 0007 accounting: the export runs and the manifest of every file they wrote, the accounting system's own
-- exports ingested back (QuickBooks Online General Ledger report, Xero invoice export), and the rows of
-- those files that could not be parsed, each with its file, line number and reason.
--
-- Independent of the ledger migration: the export reads closeout.ledger_lines at run time only.

-- ---------------------------------------------------------------------------------------------
-- Export
-- ---------------------------------------------------------------------------------------------
-- One row per export run. content_sha256 is the hash of the manifest (names, row counts, file hashes):
-- two runs over the same data have the same value, so "did anything change since the last export" is
-- one comparison.
CREATE TABLE closeout_data.accounting_export_runs (
    export_run_id   bigserial PRIMARY KEY,
    period          text NOT NULL CHECK (period ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    airflow_run_id  text,
    folder          text NOT NULL,
    started_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at     timestamptz,
    status          text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    invoices        integer NOT NULL DEFAULT 0,
    journals        integer NOT NULL DEFAULT 0,
    skipped         jsonb NOT NULL DEFAULT '[]',
    content_sha256  text,
    error           text
);
CREATE INDEX accounting_export_runs_period ON closeout_data.accounting_export_runs (period, export_run_id);

CREATE TABLE closeout_data.accounting_export_files (
    export_run_id  bigint NOT NULL REFERENCES closeout_data.accounting_export_runs,
    file_name      text NOT NULL,
    system         text NOT NULL CHECK (system IN ('quickbooks', 'xero')),
    kind           text NOT NULL,
    part           integer NOT NULL,
    rows           integer NOT NULL,
    records        integer NOT NULL,
    bytes          bigint NOT NULL,
    sha256         text NOT NULL,
    notes          jsonb NOT NULL DEFAULT '[]',
    PRIMARY KEY (export_run_id, file_name)
);

-- ---------------------------------------------------------------------------------------------
-- Ingest of the accounting system's own exports
-- ---------------------------------------------------------------------------------------------
-- One row per file ingested; the same file (same bytes) is ingested once, whatever its name.
CREATE TABLE closeout_data.accounting_ingests (
    ingest_id          bigserial PRIMARY KEY,
    system             text NOT NULL CHECK (system IN ('quickbooks', 'xero')),
    kind               text NOT NULL CHECK (kind IN ('general_ledger', 'invoices')),
    file_name          text NOT NULL,
    file_sha256        text NOT NULL,
    currency           text,
    report_range       text,
    ingested_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    rows_loaded        integer NOT NULL DEFAULT 0,
    rows_quarantined   integer NOT NULL DEFAULT 0,
    UNIQUE (system, kind, file_sha256)
);

-- QuickBooks General Ledger report rows: transactions, beginning balances and section totals, each with
-- the account path it sits under (sub-accounts as Parent:Sub), amounts signed in minor units.
CREATE TABLE closeout_data.accounting_gl_rows (
    ingest_id       bigint NOT NULL REFERENCES closeout_data.accounting_ingests,
    line_no         integer NOT NULL,
    row_kind        text NOT NULL CHECK (row_kind IN ('transaction', 'beginning_balance', 'account_total', 'total')),
    account         text,
    txn_date        date,
    txn_type        text,
    num             text,
    name            text,
    memo            text,
    split_account   text,
    currency        text NOT NULL,
    amount_minor    bigint,
    balance_minor   bigint,
    PRIMARY KEY (ingest_id, line_no)
);

-- Xero invoice export, one row per invoice line; invoice-level amounts repeat on each line as Xero writes them.
CREATE TABLE closeout_data.accounting_xero_invoice_lines (
    ingest_id           bigint NOT NULL REFERENCES closeout_data.accounting_ingests,
    line_no             integer NOT NULL,
    invoice_number      text NOT NULL,
    contact_name        text,
    reference           text,
    invoice_type        text,
    status              text,
    invoice_date        date,
    due_date            date,
    currency            text NOT NULL,
    description         text,
    quantity            numeric,
    unit_amount         numeric,
    line_amount_minor   bigint,
    total_minor         bigint,
    tax_total_minor     bigint,
    amount_paid_minor   bigint,
    amount_due_minor    bigint,
    PRIMARY KEY (ingest_id, line_no)
);
CREATE INDEX accounting_xero_invoice_lines_number ON closeout_data.accounting_xero_invoice_lines (invoice_number);

-- A row that could not be parsed: kept with its file, line and reason, never dropped silently.
CREATE TABLE closeout_data.accounting_quarantine (
    ingest_id   bigint NOT NULL REFERENCES closeout_data.accounting_ingests,
    file_name   text NOT NULL,
    line_no     integer NOT NULL,
    reason      text NOT NULL,
    raw         text NOT NULL,
    PRIMARY KEY (ingest_id, line_no)
);

-- ---------------------------------------------------------------------------------------------
-- Views for finance and the reconciliation
-- ---------------------------------------------------------------------------------------------
CREATE VIEW closeout.accounting_exports AS
SELECT r.export_run_id, r.period, r.status, r.folder, r.started_at, r.finished_at, r.content_sha256,
       f.file_name, f.system, f.kind, f.part, f.rows, f.records, f.bytes, f.sha256, f.notes
FROM closeout_data.accounting_export_runs r
LEFT JOIN closeout_data.accounting_export_files f USING (export_run_id);

-- What the accounting system says was posted, one row per transaction line, signed (debit positive).
CREATE VIEW closeout.accounting_ledger AS
SELECT i.system, i.ingest_id, i.file_name, g.line_no, g.account, g.txn_date, g.txn_type, g.num, g.name,
       g.memo, g.split_account, g.currency, g.amount_minor
FROM closeout_data.accounting_gl_rows g
JOIN closeout_data.accounting_ingests i USING (ingest_id)
WHERE g.row_kind = 'transaction';

-- Xero's invoices as exported, one row per invoice and file; credit notes signed negative.
CREATE VIEW closeout.accounting_invoices AS
SELECT i.system, l.ingest_id, i.file_name, l.invoice_number, min(l.contact_name) AS contact_name,
       min(l.reference) AS reference, min(l.invoice_type) AS invoice_type, min(l.status) AS status,
       min(l.invoice_date) AS invoice_date, min(l.currency) AS currency, count(*) AS line_count,
       sum(l.line_amount_minor) AS lines_minor, min(l.total_minor) AS total_minor,
       min(l.amount_paid_minor) AS amount_paid_minor, min(l.amount_due_minor) AS amount_due_minor,
       CASE WHEN min(l.invoice_type) ILIKE '%credit%' THEN -abs(min(l.total_minor))
            ELSE min(l.total_minor) END AS signed_total_minor
FROM closeout_data.accounting_xero_invoice_lines l
JOIN closeout_data.accounting_ingests i USING (ingest_id)
GROUP BY i.system, l.ingest_id, i.file_name, l.invoice_number;

CREATE VIEW closeout.accounting_quarantine AS
SELECT q.ingest_id, i.system, i.kind, q.file_name, q.line_no, q.reason, q.raw, i.ingested_at
FROM closeout_data.accounting_quarantine q
JOIN closeout_data.accounting_ingests i USING (ingest_id);

CREATE VIEW closeout.accounting_ingests AS
SELECT ingest_id, system, kind, file_name, file_sha256, currency, report_range, ingested_at, rows_loaded,
       rows_quarantined
FROM closeout_data.accounting_ingests;
