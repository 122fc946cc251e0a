-- 0032 expenses: Harvest and Clockify expenses captured like time entries (issue 16 item 1).
--   * closeout_data.expense_versions: every version ever seen of every expense, one per sync run that
--     saw a change; append-only (the time entries' trigger function refuses UPDATE, DELETE, TRUNCATE);
--   * closeout_data.expense_heads: pointer to the current version of each expense;
--   * closeout_data.expense_sweep_seen: ids a deletion sweep saw (expense ids share no space with time
--     entry ids, so they are kept apart from closeout_data.sweep_seen);
--   * public views closeout.expenses (current state, deleted ones stay with deleted_at) and
--     closeout.expense_versions.
-- Money: amount_minor is integer minor units of `currency` (UPPER ISO code of closeout_data.currencies),
-- computed once in the merge from the tracker's total; units and unit_price stay exact numerics.

CREATE TABLE closeout_data.expense_versions (
    source                text COLLATE "C" NOT NULL,
    source_id             text COLLATE "C" NOT NULL,
    version               integer NOT NULL CHECK (version >= 1),
    sync_run_id           bigint NOT NULL,
    seen_at               timestamptz NOT NULL DEFAULT clock_timestamp(),
    change                text NOT NULL CHECK (change IN ('created', 'updated', 'deleted', 'restored')),
    client_key            text,
    project_key           text NOT NULL,
    user_key              text NOT NULL,
    client_source_id      text,
    project_source_id     text NOT NULL,
    user_source_id        text NOT NULL,
    spent_date            date NOT NULL,
    category_source_id    text,
    category              text,
    unit_name             text,
    units                 numeric CHECK (units >= 0),
    unit_price            numeric CHECK (unit_price >= 0),
    total_cost            numeric NOT NULL CHECK (total_cost >= 0),
    billable              boolean NOT NULL,
    approved              boolean NOT NULL,
    billed_in_source      boolean NOT NULL,
    source_invoice_ref    text,
    is_locked             boolean NOT NULL,
    locked_reason         text,
    currency              text NOT NULL,
    amount_minor          bigint NOT NULL CHECK (amount_minor >= 0),
    receipt_url           text,
    receipt_file_name     text,
    receipt_file_size     bigint,
    receipt_content_type  text,
    notes                 text,
    source_created_at     timestamptz,
    source_updated_at     timestamptz,
    deleted_at            timestamptz,
    PRIMARY KEY (source, source_id, version),
    CHECK ((deleted_at IS NULL) = (change <> 'deleted'))
);

CREATE TRIGGER expense_versions_append_only
    BEFORE UPDATE OR DELETE ON closeout_data.expense_versions
    FOR EACH ROW EXECUTE FUNCTION closeout_data.refuse_history_rewrite();
CREATE TRIGGER expense_versions_no_truncate
    BEFORE TRUNCATE ON closeout_data.expense_versions
    FOR EACH STATEMENT EXECUTE FUNCTION closeout_data.refuse_history_rewrite();
CREATE INDEX expense_versions_by_run ON closeout_data.expense_versions (sync_run_id);

CREATE TABLE closeout_data.expense_heads (
    source      text COLLATE "C" NOT NULL,
    source_id   text COLLATE "C" NOT NULL,
    version     integer NOT NULL,
    spent_date  date NOT NULL,
    deleted_at  timestamptz,
    PRIMARY KEY (source, source_id)
);
CREATE INDEX expense_heads_window ON closeout_data.expense_heads (source, spent_date) WHERE deleted_at IS NULL;

CREATE TABLE closeout_data.expense_sweep_seen (
    sync_run_id bigint NOT NULL,
    source_id   text COLLATE "C" NOT NULL,
    PRIMARY KEY (sync_run_id, source_id)
);

-- Contract keys resolve through the identity map when read, as for time entries.
CREATE VIEW closeout.expense_versions AS
SELECT v.source, v.source_id, v.version, v.sync_run_id, v.seen_at, v.change,
       coalesce(mc.key, v.client_key) AS client_key,
       coalesce(mp.key, v.project_key) AS project_key,
       coalesce(mu.key, v.user_key) AS user_key,
       v.spent_date, v.category, v.billable, v.approved, v.currency, v.amount_minor, v.receipt_url,
       v.deleted_at, v.category_source_id, v.unit_name, v.units, v.unit_price, v.total_cost,
       v.billed_in_source, v.source_invoice_ref, v.is_locked, v.locked_reason, v.receipt_file_name,
       v.receipt_file_size, v.receipt_content_type, v.notes, v.source_created_at, v.source_updated_at
FROM closeout_data.expense_versions v
LEFT JOIN closeout_data.identity_map mc
       ON mc.source = v.source AND mc.kind = 'client' AND mc.source_id = v.client_source_id
LEFT JOIN closeout_data.identity_map mp
       ON mp.source = v.source AND mp.kind = 'project' AND mp.source_id = v.project_source_id
LEFT JOIN closeout_data.identity_map mu
       ON mu.source = v.source AND mu.kind = 'user' AND mu.source_id = v.user_source_id;

CREATE VIEW closeout.expenses AS
SELECT v.source, v.source_id, v.client_key, v.project_key, v.user_key, v.spent_date, v.category,
       v.billable, v.approved, v.currency, v.amount_minor, v.receipt_url, v.deleted_at, v.version,
       v.category_source_id, v.unit_name, v.units, v.unit_price, v.total_cost, v.billed_in_source,
       v.source_invoice_ref, v.is_locked, v.locked_reason, v.receipt_file_name, v.receipt_file_size,
       v.receipt_content_type, v.notes, v.source_created_at, v.source_updated_at, v.sync_run_id, v.seen_at
FROM closeout_data.expense_heads h
JOIN closeout.expense_versions v USING (source, source_id, version);

GRANT SELECT ON closeout.expenses, closeout.expense_versions TO closeout_pipeline, closeout_finance;
