-- 0001 capture: currencies, sync runs, tracker entities, versioned time entries, quarantine,
-- and the public contract views closeout.time_entries / time_entry_versions / sync_runs.
--
-- Invariants enforced here rather than only in tests:
--   * time entry versions are append-only (a trigger refuses UPDATE and DELETE);
--   * at most one running sync per tracker (partial unique index);
--   * every entry version has a currency of the exponent table (the merge joins it; tests check it).
-- The version and head tables carry no row-level foreign keys on purpose: on a 1M-entry sync the
-- three FK triggers were half of the merge time. Their invariants (sync run exists, currency known,
-- head points at an existing version) are asserted by the test suite and the reconciliation.

CREATE SCHEMA IF NOT EXISTS closeout_data;
CREATE SCHEMA IF NOT EXISTS closeout;

-- ISO 4217 minor-unit exponents. Money is stored as integer minor units; this table is the only
-- source of how many decimals a currency has.
CREATE TABLE closeout_data.currencies (
    code     text PRIMARY KEY CHECK (code ~ '^[A-Z]{3}$'),
    exponent smallint NOT NULL CHECK (exponent BETWEEN 0 AND 4),
    name     text NOT NULL
);

INSERT INTO closeout_data.currencies (code, exponent, name) VALUES
    ('AED', 2, 'UAE Dirham'), ('ARS', 2, 'Argentine Peso'), ('AUD', 2, 'Australian Dollar'),
    ('BGN', 2, 'Bulgarian Lev'), ('BHD', 3, 'Bahraini Dinar'), ('BRL', 2, 'Brazilian Real'),
    ('CAD', 2, 'Canadian Dollar'), ('CHF', 2, 'Swiss Franc'), ('CLP', 0, 'Chilean Peso'),
    ('CNY', 2, 'Yuan Renminbi'), ('COP', 2, 'Colombian Peso'), ('CZK', 2, 'Czech Koruna'),
    ('DKK', 2, 'Danish Krone'), ('EGP', 2, 'Egyptian Pound'), ('EUR', 2, 'Euro'),
    ('GBP', 2, 'Pound Sterling'), ('HKD', 2, 'Hong Kong Dollar'), ('HUF', 2, 'Forint'),
    ('IDR', 2, 'Rupiah'), ('ILS', 2, 'New Israeli Sheqel'), ('INR', 2, 'Indian Rupee'),
    ('IQD', 3, 'Iraqi Dinar'), ('ISK', 0, 'Iceland Krona'), ('JOD', 3, 'Jordanian Dinar'),
    ('JPY', 0, 'Yen'), ('KES', 2, 'Kenyan Shilling'), ('KRW', 0, 'Won'),
    ('KWD', 3, 'Kuwaiti Dinar'), ('LYD', 3, 'Libyan Dinar'), ('MAD', 2, 'Moroccan Dirham'),
    ('MXN', 2, 'Mexican Peso'), ('MYR', 2, 'Malaysian Ringgit'), ('NGN', 2, 'Naira'),
    ('NOK', 2, 'Norwegian Krone'), ('NZD', 2, 'New Zealand Dollar'), ('OMR', 3, 'Rial Omani'),
    ('PEN', 2, 'Sol'), ('PHP', 2, 'Philippine Peso'), ('PKR', 2, 'Pakistan Rupee'),
    ('PLN', 2, 'Zloty'), ('PYG', 0, 'Guarani'), ('QAR', 2, 'Qatari Rial'),
    ('RON', 2, 'Romanian Leu'), ('RSD', 2, 'Serbian Dinar'), ('SAR', 2, 'Saudi Riyal'),
    ('SEK', 2, 'Swedish Krona'), ('SGD', 2, 'Singapore Dollar'), ('THB', 2, 'Baht'),
    ('TND', 3, 'Tunisian Dinar'), ('TRY', 2, 'Turkish Lira'), ('TWD', 2, 'New Taiwan Dollar'),
    ('UAH', 2, 'Hryvnia'), ('UGX', 0, 'Uganda Shilling'), ('USD', 2, 'US Dollar'),
    ('UYU', 2, 'Peso Uruguayo'), ('VND', 0, 'Dong'), ('XAF', 0, 'CFA Franc BEAC'),
    ('XOF', 0, 'CFA Franc BCEAO'), ('ZAR', 2, 'Rand');

-- One row per sync of one tracker. `checkpoint` is the resume state, committed with every page;
-- `cursor` is where the next run starts, written only when a run finishes.
CREATE TABLE closeout_data.sync_runs (
    sync_run_id          bigserial PRIMARY KEY,
    source               text NOT NULL,
    mode                 text NOT NULL CHECK (mode IN ('full', 'incremental')),
    status               text NOT NULL CHECK (status IN ('running', 'succeeded', 'partial', 'failed', 'abandoned')),
    airflow_run_ids      text[] NOT NULL DEFAULT '{}',
    started_at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at          timestamptz,
    requests             integer NOT NULL DEFAULT 0,
    records              integer NOT NULL DEFAULT 0,
    versions_created     integer NOT NULL DEFAULT 0,
    deletions            integer NOT NULL DEFAULT 0,
    quarantined          integer NOT NULL DEFAULT 0,
    cursor_in            jsonb,
    cursor               jsonb,
    checkpoint           jsonb NOT NULL DEFAULT '{}'::jsonb,
    sweep_completed_at   timestamptz,
    error                text
);
CREATE UNIQUE INDEX sync_runs_one_running_per_source
    ON closeout_data.sync_runs (source) WHERE status = 'running';
CREATE INDEX sync_runs_by_source ON closeout_data.sync_runs (source, sync_run_id DESC);

-- Every HTTP call a sync made (retries included), so a figure can be traced to the call that read it.
CREATE TABLE closeout_data.sync_requests (
    sync_run_id  bigint NOT NULL REFERENCES closeout_data.sync_runs,
    seq          integer NOT NULL,
    phase        text NOT NULL,
    method       text NOT NULL,
    url          text NOT NULL,
    status       integer,
    outcome      text NOT NULL,
    duration_ms  integer NOT NULL,
    records      integer,
    requested_at timestamptz NOT NULL,
    PRIMARY KEY (sync_run_id, seq)
);

-- Clients, projects, tasks and users as each tracker last described them.
CREATE TABLE closeout_data.tracker_entities (
    source            text NOT NULL,
    kind              text NOT NULL CHECK (kind IN ('client', 'project', 'task', 'user')),
    source_id         text NOT NULL,
    name              text,
    currency          text,
    is_active         boolean,
    payload           jsonb NOT NULL,
    source_updated_at timestamptz,
    last_sync_run_id  bigint NOT NULL REFERENCES closeout_data.sync_runs,
    PRIMARY KEY (source, kind, source_id)
);

-- Keys are COLLATE "C": byte order is all an id needs, and it keeps btree work cheap whatever the
-- database's default locale is.
-- Every version ever seen of every time entry. Hours and rates are unconstrained numerics: stored
-- exactly as the tracker sent them, never rounded by a column type. A deletion is a version too (deleted_at set, amount 0),
-- so history is complete and rows are never removed.
CREATE TABLE closeout_data.time_entry_versions (
    source              text COLLATE "C" NOT NULL,
    source_id           text COLLATE "C" NOT NULL,
    version             integer NOT NULL CHECK (version >= 1),
    sync_run_id         bigint NOT NULL,
    seen_at             timestamptz NOT NULL DEFAULT clock_timestamp(),
    change              text NOT NULL CHECK (change IN ('created', 'updated', 'deleted', 'restored')),
    client_key          text NOT NULL,
    project_key         text NOT NULL,
    task_key            text,
    user_key            text NOT NULL,
    client_source_id    text NOT NULL,
    project_source_id   text NOT NULL,
    task_source_id      text,
    user_source_id      text NOT NULL,
    spent_date          date NOT NULL,
    hours               numeric NOT NULL CHECK (hours >= 0),
    rounded_hours       numeric NOT NULL CHECK (rounded_hours >= 0),
    billable_hours      numeric NOT NULL CHECK (billable_hours >= 0),
    billable            boolean NOT NULL,
    approved            boolean NOT NULL,
    billed_in_source    boolean NOT NULL,
    source_invoice_ref  text,
    is_locked           boolean NOT NULL,
    is_running          boolean NOT NULL,
    billable_rate       numeric CHECK (billable_rate >= 0),
    currency            text NOT NULL,
    amount_minor        bigint CHECK (amount_minor >= 0),
    notes               text,
    source_created_at   timestamptz,
    source_updated_at   timestamptz NOT NULL,
    deleted_at          timestamptz,
    PRIMARY KEY (source, source_id, version),
    CHECK ((deleted_at IS NULL) = (change <> 'deleted'))
);

CREATE FUNCTION closeout_data.refuse_history_rewrite() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'closeout: % on %.% is refused: history is append-only',
        TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME;
END $$;

CREATE TRIGGER time_entry_versions_append_only
    BEFORE UPDATE OR DELETE ON closeout_data.time_entry_versions
    FOR EACH ROW EXECUTE FUNCTION closeout_data.refuse_history_rewrite();
CREATE TRIGGER time_entry_versions_no_truncate
    BEFORE TRUNCATE ON closeout_data.time_entry_versions
    FOR EACH STATEMENT EXECUTE FUNCTION closeout_data.refuse_history_rewrite();

-- Pointer to the current version of each entry (narrow on purpose: the full row lives in versions).
CREATE TABLE closeout_data.time_entry_heads (
    source        text COLLATE "C" NOT NULL,
    source_id     text COLLATE "C" NOT NULL,
    version       integer NOT NULL,
    spent_date    date NOT NULL,
    deleted_at    timestamptz,
    PRIMARY KEY (source, source_id)
);

-- Ids a deletion sweep has seen in the tracker, kept until the sweep finishes so a crashed sweep
-- resumes without re-reading what it already read.
CREATE TABLE closeout_data.sweep_seen (
    sync_run_id bigint NOT NULL,
    source_id   text COLLATE "C" NOT NULL,
    PRIMARY KEY (sync_run_id, source_id)
);

-- Bad input, kept with its reason and the raw payload. Re-reading the same bad record bumps
-- times_seen instead of adding rows; a later valid version of the same entry resolves it.
CREATE TABLE closeout_data.quarantine (
    quarantine_id      bigserial PRIMARY KEY,
    source             text NOT NULL,
    entity             text NOT NULL,
    source_id          text,
    field              text,
    reason             text NOT NULL,
    raw                text NOT NULL,
    raw_hash           text NOT NULL,
    url                text,
    first_sync_run_id  bigint NOT NULL REFERENCES closeout_data.sync_runs,
    last_sync_run_id   bigint NOT NULL REFERENCES closeout_data.sync_runs,
    first_seen_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_seen_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    times_seen         integer NOT NULL DEFAULT 1,
    resolved_at        timestamptz,
    UNIQUE (source, entity, raw_hash, reason)
);
CREATE INDEX quarantine_open ON closeout_data.quarantine (source, entity, source_id)
    WHERE resolved_at IS NULL;

-- ---------------------------------------------------------------------------------------------
-- Public contract (DESIGN.md). Columns may be added, never renamed.
-- ---------------------------------------------------------------------------------------------
CREATE VIEW closeout.time_entry_versions AS
SELECT v.source, v.source_id, v.version, v.sync_run_id, v.seen_at, v.change,
       v.client_key, v.project_key, v.task_key, v.user_key, v.spent_date, v.hours,
       v.rounded_hours, v.billable_hours, v.billable, v.approved, v.billed_in_source,
       v.source_invoice_ref, v.is_locked, v.is_running, v.billable_rate, v.currency,
       v.amount_minor, v.notes, v.source_created_at, v.source_updated_at, v.deleted_at
FROM closeout_data.time_entry_versions v;

CREATE VIEW closeout.time_entries AS
SELECT v.source, v.source_id, v.client_key, v.project_key, v.task_key, v.user_key, v.spent_date,
       v.hours, v.billable_hours, v.billable, v.approved, v.billable_rate, v.currency,
       v.amount_minor, v.source_updated_at, v.deleted_at, v.version,
       v.rounded_hours, v.billed_in_source, v.source_invoice_ref, v.is_locked, v.is_running,
       v.notes, v.source_created_at, v.sync_run_id, v.seen_at
FROM closeout_data.time_entry_heads h
JOIN closeout_data.time_entry_versions v USING (source, source_id, version);

CREATE VIEW closeout.sync_runs AS
SELECT r.source, r.started_at, r.finished_at, r.requests, r.records, r.cursor, r.status,
       r.sync_run_id, r.mode, r.versions_created, r.deletions, r.quarantined,
       r.sweep_completed_at, r.airflow_run_ids, r.error
FROM closeout_data.sync_runs r;

CREATE VIEW closeout.quarantine AS
SELECT q.quarantine_id, q.source, q.entity, q.source_id, q.field, q.reason, q.raw, q.url,
       q.first_sync_run_id, q.last_sync_run_id, q.first_seen_at, q.last_seen_at, q.times_seen,
       q.resolved_at
FROM closeout_data.quarantine q;
