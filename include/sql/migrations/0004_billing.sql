-- 0004 billing: client billing configuration, the drafting state of every entry, invoice drafts with
-- their full version history, exceptions, rate drift, and the contract views closeout.invoices,
-- closeout.invoice_lines and closeout.invoice_line_entries.
--
-- Invariants enforced here rather than only in tests:
--   * invoice lines are append-only: a rebuilt draft is a new version, old versions stay
--     reconstructible, and a line row is only ever closed (valid_to set) while its invoice is a draft;
--   * an invoice_line_entries row is never deleted, and is only ever closed (valid_to set) while its
--     invoice is still a draft: once an invoice is frozen for publication its billing is final, and a
--     later change to one of its entries can only be billed as a new, linked adjustment or credit;
--   * one invoice per client, currency and billing period.

-- ---------------------------------------------------------------------------------------------
-- Configuration (a mirror of the billing config file; see closeout.billing.config)
-- ---------------------------------------------------------------------------------------------
-- client_key '*' holds the defaults every client without its own row is billed with.
CREATE TABLE closeout_data.billing_clients (
    client_key          text PRIMARY KEY,
    name                text,
    email               text,
    billing_period      text NOT NULL CHECK (billing_period IN ('monthly', 'semi_monthly', 'weekly')),
    -- NULL: bill each entry in its own currency (one invoice per currency); only for the defaults
    currency            text REFERENCES closeout_data.currencies (code),
    grouping            text NOT NULL CHECK (grouping IN ('project_task', 'project', 'user', 'day', 'entry')),
    require_approval    boolean NOT NULL,
    payment_terms_days  integer NOT NULL CHECK (payment_terms_days BETWEEN 0 AND 365),
    rounding            text NOT NULL CHECK (rounding IN ('tracker', 'exact')),
    publish_policy      text NOT NULL CHECK (publish_policy IN ('auto', 'hold')),
    config_hash         text NOT NULL,
    updated_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    CHECK (currency IS NOT NULL OR client_key = '*')
);
INSERT INTO closeout_data.billing_clients (client_key, billing_period, currency, grouping, require_approval,
                                           payment_terms_days, rounding, publish_policy, config_hash)
VALUES ('*', 'monthly', NULL, 'project_task', true, 30, 'tracker', 'auto', 'builtin');

-- The client's agreed rates, for the drift report (billing always uses each entry version's own rate).
-- NULL project/task/user = any; the most specific matching card wins.
CREATE TABLE closeout_data.billing_rate_cards (
    client_key      text NOT NULL,
    project_key     text,
    task_key        text,
    user_key        text,
    currency        text NOT NULL REFERENCES closeout_data.currencies (code),
    rate            numeric NOT NULL CHECK (rate >= 0),
    effective_from  date NOT NULL DEFAULT '-infinity',
    effective_to    date NOT NULL DEFAULT 'infinity',
    CHECK (effective_from <= effective_to)
);
CREATE INDEX billing_rate_cards_client ON closeout_data.billing_rate_cards (client_key);

-- Every configuration load, for audit: what was applied, when, from where.
CREATE TABLE closeout_data.billing_config_loads (
    load_id          bigserial PRIMARY KEY,
    loaded_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    origin           text NOT NULL,
    content_hash     text NOT NULL,
    clients          integer NOT NULL,
    rate_cards       integer NOT NULL,
    changed_clients  text[] NOT NULL,
    content          jsonb NOT NULL
);

-- ---------------------------------------------------------------------------------------------
-- Drafting state
-- ---------------------------------------------------------------------------------------------
-- How the drafting last judged each entry: its billing state and, when billable, what it is worth.
-- entry_version <> the head's version means "changed since": only those entries are re-judged.
-- entry_version = -1 forces a re-judgement (config change, identity map change, voided invoice).
-- Narrow on purpose: a first draft writes one row per entry (a million at once), so it holds what the
-- drafting and the exception and drift reports need, and no copies of names (lines look names up by
-- contract key when they are built). base_state/base_reason: the verdict on the entry alone; state/
-- reason: after the one rule that spans entries (a user's day over 24 hours). The field a reason
-- concerns follows from the reason (closeout_data.billing_field).
-- user_key (grouped by, with the day) and, in the line tables below, line_key are identifiers, not
-- words: COLLATE "C" compares them byte-wise, which makes sorting and indexing a million of them
-- several times cheaper than under a linguistic collation (equality is the same either way). Columns
-- compared with other tables' indexed columns (client_key, invoice_id) keep the default collation, so
-- those indexes stay usable.
CREATE TABLE closeout_data.billing_entries (
    source          text COLLATE "C" NOT NULL,
    source_id       text COLLATE "C" NOT NULL,
    entry_version   integer NOT NULL,
    spent_date      date NOT NULL,
    period_start    date NOT NULL,
    period_end      date NOT NULL,
    amount_minor    bigint,                    -- quantity x rate, rounded once, half-up
    client_key      text NOT NULL,
    project_key     text NOT NULL,
    task_key        text,
    user_key        text COLLATE "C" NOT NULL,
    day_hours       numeric NOT NULL,          -- counts toward the user's day (0 once deleted)
    quantity        numeric,                   -- billable hours under the client's rounding
    rate            numeric,
    entry_currency  text NOT NULL,
    currency        text NOT NULL,             -- the client's billing currency
    base_state      text NOT NULL,
    base_reason     text,
    state           text NOT NULL CHECK (state IN ('billable', 'not_billable', 'not_approved', 'running',
                                                   'deleted', 'billed_in_source', 'exception')),
    reason          text,
    source_invoice_ref text,
    first_seen_at   timestamptz NOT NULL DEFAULT now(),
    evaluated_at    timestamptz NOT NULL DEFAULT now(),
    -- keys led by their most selective column (every key of a source starts with the same bytes):
    -- lookups are by both columns either way, and building or filling the index sorts far faster
    PRIMARY KEY (source_id, source)
)
-- room on every page for the next version of its rows: re-judging an entry rewrites its row in place
-- (a HOT update), without touching the indexes, unless its key or state changes
WITH (fillfactor = 90);
-- what is kept out of drafts is few rows: counted and listed without reading every entry
CREATE INDEX billing_entries_kept_out ON closeout_data.billing_entries (state, reason)
    WHERE state IN ('exception', 'billed_in_source');

CREATE FUNCTION closeout_data.billing_field(reason text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE reason WHEN 'billed_in_source' THEN 'billed_in_source' WHEN 'no_client' THEN 'client'
                       WHEN 'missing_rate' THEN 'billable_rate' WHEN 'currency_mismatch' THEN 'currency'
                       WHEN 'negative_hours' THEN 'hours' WHEN 'over_24h_day' THEN 'hours' END
$$;

-- Fingerprints of inputs that change how every entry is judged (the identity map).
CREATE TABLE closeout_data.billing_state (
    singleton             boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    identity_fingerprint  text NOT NULL DEFAULT ''
);
INSERT INTO closeout_data.billing_state DEFAULT VALUES;

-- One row per drafting run: what it looked at and what it changed.
CREATE TABLE closeout_data.draft_runs (
    draft_run_id      bigserial PRIMARY KEY,
    airflow_run_id    text,
    started_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at       timestamptz,
    status            text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    entries_judged    integer NOT NULL DEFAULT 0,
    invoices_changed  integer NOT NULL DEFAULT 0,
    rows_closed       integer NOT NULL DEFAULT 0,
    rows_added        integer NOT NULL DEFAULT 0,
    adjustment_lines  integer NOT NULL DEFAULT 0,
    credit_lines      integer NOT NULL DEFAULT 0,
    exceptions        integer NOT NULL DEFAULT 0,
    excluded          integer NOT NULL DEFAULT 0,
    exceptions_by_reason jsonb NOT NULL DEFAULT '{}'::jsonb,
    error             text
);

-- ---------------------------------------------------------------------------------------------
-- Invoices
-- ---------------------------------------------------------------------------------------------
-- status: draft (rebuilt freely) -> publishing (frozen: its content is final) -> open -> paid |
-- uncollectible | void. A voided invoice releases its entries: they are billed again, as linked
-- adjustments, on the client's next draft.
CREATE TABLE closeout_data.invoices (
    invoice_id          text PRIMARY KEY,
    client_key          text NOT NULL,
    currency            text NOT NULL REFERENCES closeout_data.currencies (code),
    period_start        date NOT NULL,
    period_end          date NOT NULL,
    billing_period      text NOT NULL,
    status              text NOT NULL DEFAULT 'draft'
                        CHECK (status IN ('draft', 'publishing', 'open', 'paid', 'uncollectible', 'void')),
    version             integer NOT NULL DEFAULT 0,
    total_minor         bigint NOT NULL DEFAULT 0,
    line_count          integer NOT NULL DEFAULT 0,
    entry_count         integer NOT NULL DEFAULT 0,
    payment_terms_days  integer NOT NULL,
    publish_policy      text NOT NULL,
    approved_version    integer,
    approved_by         text,
    approved_at         timestamptz,
    approval_note       text,
    frozen_version      integer,
    frozen_at           timestamptz,
    stripe_invoice_id   text,
    stripe_number       text,
    hosted_invoice_url  text,
    hosted_invoice_url_expires_at timestamptz,
    amount_paid_minor   bigint NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (client_key, currency, period_start, period_end),
    CHECK (period_start <= period_end),
    CHECK ((status = 'draft') = (frozen_version IS NULL))
)
-- a changed draft is updated in place once per run (version and totals): room for it on its page
WITH (fillfactor = 80);
CREATE INDEX invoices_frozen_by_client ON closeout_data.invoices (client_key, currency, period_start)
    WHERE status <> 'draft';

-- Every version of every invoice, with the drafting run that built it.
CREATE TABLE closeout_data.invoice_versions (
    invoice_id    text NOT NULL REFERENCES closeout_data.invoices,
    version       integer NOT NULL,
    draft_run_id  bigint NOT NULL REFERENCES closeout_data.draft_runs,
    built_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    total_minor   bigint NOT NULL,
    line_count    integer NOT NULL,
    entry_count   integer NOT NULL,
    PRIMARY KEY (invoice_id, version)
);

-- The lines of every invoice version. A line is identified across versions by line_key: kind,
-- grouping values and rate (time lines), or entry and rate (adjustments, credits). Each row is one
-- state of one line, valid from invoice version valid_from up to, not including, valid_to (NULL: still
-- valid), as invoice_line_entries rows are: a refresh writes only the lines it touches (a new row, the
-- old one closed) and every other line carries over. The line set of any version is the rows valid at
-- it; line numbers follow from the order of that set (closeout_data.line_rank, then description), so
-- the views compute them rather than store them, and adding a line does not rewrite its neighbours.
-- amount_minor = quantity x unit_rate rounded once, half-up; rounding_minor = amount_minor minus the
-- sum of its entries' own rounded amounts (so a figure on the invoice and the entries it bills always
-- tie out, to the minor unit, with the rounding shown rather than hidden).
CREATE TABLE closeout_data.invoice_lines (
    invoice_id          text NOT NULL,
    line_key            text COLLATE "C" NOT NULL,
    valid_from          integer NOT NULL,
    valid_to            integer,
    kind                text NOT NULL CHECK (kind IN ('time', 'adjustment', 'credit')),
    description         text NOT NULL,
    quantity            numeric NOT NULL,
    unit_rate           numeric NOT NULL,
    amount_minor        bigint NOT NULL,
    rounding_minor      bigint NOT NULL,
    entry_count         integer NOT NULL CHECK (entry_count > 0),
    project_key         text,
    task_key            text,
    user_key            text,
    spent_date          date,
    adjusts_invoice_id  text,
    adjusts_line_key    text COLLATE "C",
    PRIMARY KEY (invoice_id, line_key, valid_from),
    CHECK (valid_to IS NULL OR valid_to > valid_from)
)
-- room for closing rows in place (valid_to is in no index: a HOT update)
WITH (fillfactor = 90);

-- Line rows are never deleted and never edited; a row is only ever closed, once, while its invoice
-- is a draft. So the line set of every past version stays reconstructible, and a frozen invoice's
-- lines are final. Checked once per statement over all the rows it changed (a refresh closes
-- thousands of rows in one statement): every changed row was open, is now closed after it started,
-- and is otherwise as it was (the old rows, with that, are the new rows exactly); and no changed row
-- belongs to an invoice that is no longer a draft.
CREATE FUNCTION closeout_data.guard_invoice_lines() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'closeout: DELETE on invoice_lines is refused: line history is append-only';
    END IF;
    SELECT x.invoice_id, x.line_key INTO bad FROM (
        SELECT invoice_id, line_key, valid_from, kind, description, quantity, unit_rate, amount_minor,
               rounding_minor, entry_count, project_key, task_key, user_key, spent_date, adjusts_invoice_id,
               adjusts_line_key, valid_to IS NULL AS was_open
        FROM old_rows
        EXCEPT ALL
        SELECT invoice_id, line_key, valid_from, kind, description, quantity, unit_rate, amount_minor,
               rounding_minor, entry_count, project_key, task_key, user_key, spent_date, adjusts_invoice_id,
               adjusts_line_key, true
        FROM new_rows WHERE valid_to > valid_from
    ) x LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'closeout: invoice_lines are append-only: a line row can only be closed, once (invoice %, line %)',
            bad.invoice_id, bad.line_key;
    END IF;
    SELECT n.invoice_id INTO bad
    FROM new_rows n JOIN closeout_data.invoices i ON i.invoice_id = n.invoice_id
    WHERE i.status <> 'draft' LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'closeout: invoice % is frozen; its lines are final', bad.invoice_id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER invoice_lines_guard
    AFTER UPDATE ON closeout_data.invoice_lines
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION closeout_data.guard_invoice_lines();
CREATE TRIGGER invoice_lines_no_delete
    BEFORE DELETE ON closeout_data.invoice_lines
    FOR EACH STATEMENT EXECUTE FUNCTION closeout_data.guard_invoice_lines();
CREATE TRIGGER invoice_lines_no_truncate
    BEFORE TRUNCATE ON closeout_data.invoice_lines
    FOR EACH STATEMENT EXECUTE FUNCTION closeout_data.refuse_history_rewrite();

-- The order of the lines within a version: time, then adjustments, then credits, each by description.
CREATE FUNCTION closeout_data.line_rank(kind text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE kind WHEN 'time' THEN 0 WHEN 'adjustment' THEN 1 ELSE 2 END
$$;

-- Which entry version each line bills, and for how much (the entry's own amount, or for an
-- adjustment the difference to what was billed before). Valid from invoice version valid_from up to,
-- not including, valid_to (NULL: still valid). Rows of unchanged entries carry over between versions,
-- so refreshing a draft writes only what changed.
CREATE TABLE closeout_data.invoice_line_entries (
    invoice_id     text NOT NULL,
    line_key       text COLLATE "C" NOT NULL,
    source         text COLLATE "C" NOT NULL,
    source_id      text COLLATE "C" NOT NULL,
    entry_version  integer NOT NULL,
    quantity       numeric NOT NULL,
    unit_rate      numeric NOT NULL,
    amount_minor   bigint NOT NULL,
    valid_from     integer NOT NULL,
    valid_to       integer,
    CHECK (valid_to IS NULL OR valid_to > valid_from)
);
-- The one index the drafting needs (current rows of an entry; led by source_id, as billing_entries'
-- key is). No primary key on purpose: at 1M rows each index is a second of every full draft;
-- uniqueness of (invoice, line, entry, valid_from) follows from the drafting writing each entry once
-- per line and version, and the test suite checks it.
CREATE INDEX invoice_line_entries_current_by_entry ON closeout_data.invoice_line_entries (source_id, source)
    WHERE valid_to IS NULL;

-- Checked as the lines are (guard_invoice_lines): once per statement, over every row it changed.
CREATE FUNCTION closeout_data.guard_invoice_line_entries() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'closeout: DELETE on invoice_line_entries is refused: billing history is kept';
    END IF;
    SELECT x.invoice_id, x.source, x.source_id INTO bad FROM (
        SELECT invoice_id, line_key, source, source_id, entry_version, quantity, unit_rate, amount_minor, valid_from,
               valid_to IS NULL AS was_open
        FROM old_rows
        EXCEPT ALL
        SELECT invoice_id, line_key, source, source_id, entry_version, quantity, unit_rate, amount_minor, valid_from,
               true
        FROM new_rows WHERE valid_to > valid_from
    ) x LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'closeout: invoice_line_entries rows can only be closed, once (invoice %, entry %:%)',
            bad.invoice_id, bad.source, bad.source_id;
    END IF;
    SELECT n.invoice_id, n.source, n.source_id INTO bad
    FROM new_rows n JOIN closeout_data.invoices i ON i.invoice_id = n.invoice_id
    WHERE i.status <> 'draft' LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'closeout: invoice % is frozen; entry %:% can only be corrected on a new invoice',
            bad.invoice_id, bad.source, bad.source_id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER invoice_line_entries_guard
    AFTER UPDATE ON closeout_data.invoice_line_entries
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION closeout_data.guard_invoice_line_entries();
CREATE TRIGGER invoice_line_entries_no_delete
    BEFORE DELETE ON closeout_data.invoice_line_entries
    FOR EACH STATEMENT EXECUTE FUNCTION closeout_data.guard_invoice_line_entries();
CREATE TRIGGER invoice_line_entries_no_truncate
    BEFORE TRUNCATE ON closeout_data.invoice_line_entries
    FOR EACH STATEMENT EXECUTE FUNCTION closeout_data.refuse_history_rewrite();

-- ---------------------------------------------------------------------------------------------
-- Public contract (DESIGN.md). Columns may be added, never renamed.
-- ---------------------------------------------------------------------------------------------
CREATE VIEW closeout.invoices AS
SELECT i.invoice_id, i.client_key, i.period_start, i.period_end, i.currency, i.status, i.total_minor,
       i.stripe_invoice_id, i.hosted_invoice_url, i.amount_paid_minor,
       i.version, i.line_count, i.entry_count, i.billing_period, i.payment_terms_days, i.publish_policy,
       i.approved_version, i.approved_by, i.approved_at, i.frozen_version, i.frozen_at, i.stripe_number,
       i.hosted_invoice_url_expires_at, i.created_at, i.updated_at,
       c.name AS client_name
FROM closeout_data.invoices i
LEFT JOIN closeout_data.billing_clients c ON c.client_key = i.client_key;

-- The current lines of every invoice, numbered. Internal: the contract views below read it. Numbered
-- per invoice in a LATERAL subquery, so a query about some invoices (a filter or a join on invoice_id)
-- numbers only theirs, by one index scan each, instead of numbering every line there is.
CREATE VIEW closeout_data.current_invoice_lines AS
SELECT i.invoice_id, i.version, l.line_no, l.line_key, l.kind, l.description, l.quantity, l.unit_rate,
       l.amount_minor, l.rounding_minor, l.entry_count, l.project_key, l.task_key, l.user_key, l.spent_date,
       l.adjusts_invoice_id, l.adjusts_line_key
FROM closeout_data.invoices i
CROSS JOIN LATERAL (
    SELECT row_number() OVER (ORDER BY closeout_data.line_rank(c.kind), c.description, c.line_key)::integer
               AS line_no,
           c.*
    FROM closeout_data.invoice_lines c
    WHERE c.invoice_id = i.invoice_id AND c.valid_to IS NULL
) l;

CREATE VIEW closeout.invoice_lines AS
SELECT l.invoice_id, l.line_no, l.kind, l.description, l.quantity, l.unit_rate, l.amount_minor,
       l.rounding_minor, l.entry_count, l.line_key, l.version, l.project_key, l.task_key, l.user_key,
       l.spent_date, l.adjusts_invoice_id,
       (SELECT o.line_no FROM closeout_data.current_invoice_lines o
        WHERE o.invoice_id = l.adjusts_invoice_id AND o.line_key = l.adjusts_line_key) AS adjusts_line_no
FROM closeout_data.current_invoice_lines l;

CREATE VIEW closeout.invoice_line_entries AS
SELECT e.invoice_id, l.line_no, e.source, e.source_id, e.entry_version AS version, e.amount_minor,
       e.quantity, e.unit_rate, e.line_key, l.kind
FROM closeout_data.invoice_line_entries e
JOIN closeout_data.current_invoice_lines l ON l.invoice_id = e.invoice_id AND l.line_key = e.line_key
WHERE e.valid_to IS NULL;

-- Audit: every version of every invoice, and the full line set each version had (the line rows valid
-- at that version, numbered as they were), numbered per version as the current lines are per invoice.
CREATE VIEW closeout.invoice_versions AS
SELECT v.invoice_id, v.version, v.draft_run_id, v.built_at, v.total_minor, v.line_count, v.entry_count
FROM closeout_data.invoice_versions v;

CREATE VIEW closeout.invoice_line_versions AS
SELECT v.invoice_id, v.version, l.line_no, l.kind, l.description, l.quantity, l.unit_rate, l.amount_minor,
       l.rounding_minor, l.entry_count, l.line_key, l.adjusts_invoice_id, l.adjusts_line_key
FROM closeout_data.invoice_versions v
CROSS JOIN LATERAL (
    SELECT row_number() OVER (ORDER BY closeout_data.line_rank(c.kind), c.description, c.line_key)::integer
               AS line_no,
           c.*
    FROM closeout_data.invoice_lines c
    WHERE c.invoice_id = v.invoice_id AND c.valid_from <= v.version AND (c.valid_to IS NULL OR c.valid_to > v.version)
) l;

CREATE VIEW closeout.billing_clients AS
SELECT client_key, name, email, billing_period, currency, grouping, require_approval, payment_terms_days,
       rounding, publish_policy, updated_at
FROM closeout_data.billing_clients;

CREATE VIEW closeout.draft_runs AS
SELECT draft_run_id, airflow_run_id, started_at, finished_at, status, entries_judged, invoices_changed,
       rows_closed, rows_added, adjustment_lines, credit_lines, exceptions, excluded, exceptions_by_reason, error
FROM closeout_data.draft_runs;

-- What the drafting keeps out of invoices, and why: bad input ('exception'), entries already invoiced
-- inside the tracker ('excluded'), and time entries the capture quarantined ('quarantined').
CREATE VIEW closeout.billing_exceptions AS
SELECT CASE b.state WHEN 'exception' THEN 'exception' ELSE 'excluded' END AS kind,
       b.source, b.source_id, b.entry_version AS version, b.client_key, b.project_key, b.user_key,
       b.spent_date, b.reason, closeout_data.billing_field(b.reason) AS field, b.quantity AS hours, b.rate,
       b.entry_currency AS currency, b.currency AS billing_currency, b.period_start, b.source_invoice_ref,
       b.first_seen_at, b.evaluated_at
FROM closeout_data.billing_entries b
WHERE b.state IN ('exception', 'billed_in_source')
UNION ALL
SELECT 'quarantined', q.source, q.source_id, NULL, NULL, NULL, NULL, NULL, q.reason, q.field, NULL, NULL,
       NULL, NULL, NULL, NULL, q.first_seen_at, q.last_seen_at
FROM closeout_data.quarantine q
WHERE q.entity = 'time_entry' AND q.resolved_at IS NULL;

-- Rate drift: (a) billable entries whose rate differs from the client's agreed rate card (the most
-- specific card for that project, task, user, currency and date); (b) entries whose rate changed after
-- they were billed on a frozen invoice. Amounts say what the difference is worth.
CREATE VIEW closeout.rate_drift AS
SELECT 'rate_card'::text AS kind, b.source, b.source_id, b.entry_version AS version, b.client_key,
       b.project_key, b.task_key, b.user_key, b.spent_date, b.currency, b.quantity,
       b.rate AS entry_rate, card.rate AS reference_rate, b.amount_minor,
       round(b.quantity * card.rate * (10::numeric ^ cur.exponent))::bigint AS reference_amount_minor,
       b.amount_minor - round(b.quantity * card.rate * (10::numeric ^ cur.exponent))::bigint AS difference_minor,
       NULL::text AS billed_invoice_id
FROM closeout_data.billing_entries b
JOIN closeout_data.currencies cur ON cur.code = b.currency
JOIN LATERAL (
    SELECT c.rate FROM closeout_data.billing_rate_cards c
    WHERE c.client_key = b.client_key AND c.currency = b.currency
      AND (c.project_key IS NULL OR c.project_key = b.project_key)
      AND (c.task_key IS NULL OR c.task_key = b.task_key)
      AND (c.user_key IS NULL OR c.user_key = b.user_key)
      AND b.spent_date BETWEEN c.effective_from AND c.effective_to
    ORDER BY (c.user_key IS NOT NULL)::int * 4 + (c.task_key IS NOT NULL)::int * 2
             + (c.project_key IS NOT NULL)::int DESC, c.effective_from DESC
    LIMIT 1
) card ON true
WHERE b.state = 'billable' AND b.rate IS DISTINCT FROM card.rate
UNION ALL
SELECT 'changed_after_billing', b.source, b.source_id, b.entry_version, b.client_key, b.project_key,
       b.task_key, b.user_key, b.spent_date, i.currency, e.quantity, b.rate, e.unit_rate,
       CASE WHEN b.state = 'billable' THEN b.amount_minor END, e.amount_minor,
       CASE WHEN b.state = 'billable' THEN b.amount_minor END - e.amount_minor, e.invoice_id
FROM closeout_data.invoice_line_entries e
JOIN closeout_data.invoices i ON i.invoice_id = e.invoice_id AND i.status NOT IN ('draft', 'void')
JOIN closeout_data.billing_entries b ON b.source = e.source AND b.source_id = e.source_id
WHERE e.valid_to IS NULL AND e.line_key LIKE 'time|%' AND b.rate IS DISTINCT FROM e.unit_rate;

-- ---------------------------------------------------------------------------------------------
-- Billing periods. Plain SQL functions, so the planner inlines them into set-based queries.
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION closeout_data.period_start(d date, kind text) RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE kind
        WHEN 'monthly' THEN date_trunc('month', d::timestamp)::date
        WHEN 'weekly' THEN date_trunc('week', d::timestamp)::date
        WHEN 'semi_monthly' THEN date_trunc('month', d::timestamp)::date
                                 + CASE WHEN extract(day FROM d) <= 15 THEN 0 ELSE 15 END
    END
$$;

CREATE FUNCTION closeout_data.period_end(d date, kind text) RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE kind
        WHEN 'monthly' THEN (date_trunc('month', d::timestamp) + interval '1 month - 1 day')::date
        WHEN 'weekly' THEN date_trunc('week', d::timestamp)::date + 6
        WHEN 'semi_monthly' THEN CASE WHEN extract(day FROM d) <= 15
                                      THEN date_trunc('month', d::timestamp)::date + 14
                                      ELSE (date_trunc('month', d::timestamp) + interval '1 month - 1 day')::date END
    END
$$;

-- An invoice's id follows from its business identity, so a rebuilt or re-run draft keeps its id.
-- Dates are spelled out with an explicit format, so the id does not depend on the session's DateStyle.
-- STABLE (to_char is), which also lets the planner inline it: a first draft computes it per entry.
CREATE FUNCTION closeout_data.invoice_id(client_key text, currency text, period_start date, period_end date)
RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT 'inv_' || substr(md5(client_key || '|' || currency || '|' || to_char(period_start::timestamp, 'YYYY-MM-DD')
                                || '|' || to_char(period_end::timestamp, 'YYYY-MM-DD')), 1, 20)
$$;

-- Period bounds per day and kind, 2000-2100, so a million entries find their period by a hash join
-- instead of two date computations each (days outside the table fall back to the functions).
CREATE TABLE closeout_data.billing_calendar (
    kind          text NOT NULL,
    day           date NOT NULL,
    period_start  date NOT NULL,
    period_end    date NOT NULL,
    PRIMARY KEY (kind, day)
);
INSERT INTO closeout_data.billing_calendar (kind, day, period_start, period_end)
SELECT k.kind, d::date, closeout_data.period_start(d::date, k.kind), closeout_data.period_end(d::date, k.kind)
FROM generate_series(date '2000-01-01', date '2100-12-31', interval '1 day') d
CROSS JOIN (VALUES ('monthly'), ('semi_monthly'), ('weekly')) k (kind);
