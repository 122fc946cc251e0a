-- 0035 expense lines: approved billable expenses are billed on invoices, exactly once (issue 16 item 2,
-- invariant 10), as time entries are (0004): the drafting (include/sql/billing/7x_expense_*.sql) writes
-- 'expense' lines, and an expense edited, deleted or re-priced after its invoice was issued (or its period
-- locked) is billed as a linked adjustment or credit line on the client's next draft.
--
--   * invoice_lines.kind gains 'expense'; lines are numbered time, expense, adjustment, credit (the
--     relative order of the existing kinds is unchanged, so no issued invoice is renumbered);
--   * closeout_data.invoice_line_expenses: which expense version each line bills, with what the line bills
--     for it (amount_minor, markup included), the expense's own amount (cost_minor, the pass-through part)
--     and the markup percentage applied; append-only as invoice_line_entries (rows are only closed, once,
--     while their invoice is an unlocked draft; never deleted);
--   * closeout_data.correction_expenses: the expense counterpart of correction_entries (rows a credit note
--     or customer balance credit took over from a draft), final once written;
--   * per-client expense options on billing_clients (expense_markup_percent, expense_receipt_links,
--     expense_grouping), shown by closeout.billing_expense_options (closeout.billing_clients is left as it
--     is, so other migrations that widen it need not know these columns);
--   * public views closeout.invoice_line_expenses (DESIGN.md: invoice_id, line_no, source, source_id,
--     version, amount_minor; plus cost_minor and markup_minor) and closeout.credit_note_expenses.

-- ---------------------------------------------------------------------------------------------
-- Line kinds and their order
-- ---------------------------------------------------------------------------------------------
DO $$
DECLARE
    constraint_name text;
BEGIN
    FOR constraint_name IN
        SELECT c.conname FROM pg_constraint c
        WHERE c.conrelid = 'closeout_data.invoice_lines'::regclass AND c.contype = 'c'
          AND pg_get_constraintdef(c.oid) LIKE '%kind%'
    LOOP
        EXECUTE format('ALTER TABLE closeout_data.invoice_lines DROP CONSTRAINT %I', constraint_name);
    END LOOP;
END $$;
ALTER TABLE closeout_data.invoice_lines ADD CONSTRAINT invoice_lines_kind_check
    CHECK (kind IN ('time', 'expense', 'adjustment', 'credit'));

CREATE OR REPLACE FUNCTION closeout_data.line_rank(kind text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE kind WHEN 'time' THEN 0 WHEN 'expense' THEN 1 WHEN 'adjustment' THEN 2 ELSE 3 END
$$;

-- ---------------------------------------------------------------------------------------------
-- Per-client expense options (a mirror of the billing config file; see closeout.billing.config)
-- ---------------------------------------------------------------------------------------------
ALTER TABLE closeout_data.billing_clients
    ADD COLUMN expense_markup_percent numeric NOT NULL DEFAULT 0
        CHECK (expense_markup_percent >= 0 AND expense_markup_percent <= 1000),
    ADD COLUMN expense_receipt_links boolean NOT NULL DEFAULT false,
    ADD COLUMN expense_grouping text NOT NULL DEFAULT 'category'
        CHECK (expense_grouping IN ('category', 'expense'));

CREATE VIEW closeout.billing_expense_options AS
SELECT client_key, name, expense_markup_percent, expense_receipt_links, expense_grouping, updated_at
FROM closeout_data.billing_clients;

-- ---------------------------------------------------------------------------------------------
-- Which expense version each line bills
-- ---------------------------------------------------------------------------------------------
-- One row per line and expense version, valid from invoice version valid_from up to, not including,
-- valid_to (NULL: still valid). cost_minor is the expense's own amount (for an adjustment or credit row,
-- the change in it: negative lowers it); amount_minor is what the line bills for it: cost_minor plus its
-- markup, cost_minor x markup_percent / 100 rounded once, half-up, in the currency's minor unit. A line's
-- own amount is its total cost times (1 + markup) rounded once (invoice_lines.rounding_minor shows the
-- difference to the sum of its rows' amounts, as for time).
CREATE TABLE closeout_data.invoice_line_expenses (
    invoice_id       text NOT NULL,
    line_key         text COLLATE "C" NOT NULL,
    source           text COLLATE "C" NOT NULL,
    source_id        text COLLATE "C" NOT NULL,
    expense_version  integer NOT NULL,
    cost_minor       bigint NOT NULL,
    markup_percent   numeric NOT NULL CHECK (markup_percent >= 0),
    amount_minor     bigint NOT NULL,
    valid_from       integer NOT NULL,
    valid_to         integer,
    CHECK (valid_to IS NULL OR valid_to > valid_from)
);
CREATE INDEX invoice_line_expenses_current_by_expense ON closeout_data.invoice_line_expenses (source_id, source)
    WHERE valid_to IS NULL;
CREATE INDEX invoice_line_expenses_current_by_line ON closeout_data.invoice_line_expenses (invoice_id, line_key)
    WHERE valid_to IS NULL;
CREATE UNIQUE INDEX invoice_line_expenses_identity
    ON closeout_data.invoice_line_expenses (invoice_id, line_key, source_id, source, valid_from);

-- The guards of invoice_line_entries (0004, 0012), for expense rows: only closed, once, and only while the
-- invoice is a draft outside a locked period; never deleted or truncated.
CREATE FUNCTION closeout_data.guard_invoice_line_expenses() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'closeout: DELETE on invoice_line_expenses is refused: billing history is kept';
    END IF;
    SELECT x.invoice_id, x.source, x.source_id INTO bad FROM (
        SELECT invoice_id, line_key, source, source_id, expense_version, cost_minor, markup_percent, amount_minor,
               valid_from, valid_to IS NULL AS was_open
        FROM old_rows
        EXCEPT ALL
        SELECT invoice_id, line_key, source, source_id, expense_version, cost_minor, markup_percent, amount_minor,
               valid_from, true
        FROM new_rows WHERE valid_to > valid_from
    ) x LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'closeout: invoice_line_expenses rows can only be closed, once (invoice %, expense %:%)',
            bad.invoice_id, bad.source, bad.source_id;
    END IF;
    SELECT n.invoice_id, n.source, n.source_id INTO bad
    FROM new_rows n JOIN closeout_data.invoices i ON i.invoice_id = n.invoice_id
    WHERE i.status <> 'draft' LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'closeout: invoice % is frozen; expense %:% can only be corrected on a new invoice',
            bad.invoice_id, bad.source, bad.source_id;
    END IF;
    SELECT n.invoice_id, n.source, n.source_id INTO bad
    FROM new_rows n JOIN closeout_data.invoices i ON i.invoice_id = n.invoice_id
    WHERE i.period_end <= closeout_data.locked_through() LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'closeout: invoice % is in a locked period; expense %:% can only be corrected on a new invoice',
            bad.invoice_id, bad.source, bad.source_id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER invoice_line_expenses_guard
    AFTER UPDATE ON closeout_data.invoice_line_expenses
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION closeout_data.guard_invoice_line_expenses();
CREATE TRIGGER invoice_line_expenses_no_delete
    BEFORE DELETE ON closeout_data.invoice_line_expenses
    FOR EACH STATEMENT EXECUTE FUNCTION closeout_data.guard_invoice_line_expenses();
CREATE TRIGGER invoice_line_expenses_no_truncate
    BEFORE TRUNCATE ON closeout_data.invoice_line_expenses
    FOR EACH STATEMENT EXECUTE FUNCTION closeout_data.refuse_history_rewrite();

-- Rows a correction (credit note, customer balance credit) took over from a draft, as correction_entries
-- (0021) for time: final once written.
CREATE TABLE closeout_data.correction_expenses (
    correction_id    text NOT NULL REFERENCES closeout_data.corrections,
    line_key         text COLLATE "C" NOT NULL,
    source           text COLLATE "C" NOT NULL,
    source_id        text COLLATE "C" NOT NULL,
    expense_version  integer NOT NULL,
    cost_minor       bigint NOT NULL,
    markup_percent   numeric NOT NULL,
    amount_minor     bigint NOT NULL,
    from_valid_from  integer NOT NULL,
    PRIMARY KEY (correction_id, line_key, source, source_id)
);
CREATE INDEX correction_expenses_by_expense ON closeout_data.correction_expenses (source_id, source);
CREATE TRIGGER correction_expenses_final
    BEFORE UPDATE OR DELETE ON closeout_data.correction_expenses
    FOR EACH STATEMENT EXECUTE FUNCTION closeout_data.refuse_correction_entry_change();
CREATE TRIGGER correction_expenses_no_truncate
    BEFORE TRUNCATE ON closeout_data.correction_expenses
    FOR EACH STATEMENT EXECUTE FUNCTION closeout_data.refuse_history_rewrite();

-- ---------------------------------------------------------------------------------------------
-- Public contract (DESIGN.md). Columns may be added, never renamed.
-- ---------------------------------------------------------------------------------------------
-- What each current line bills per expense version: amount_minor = cost_minor + markup_minor.
CREATE VIEW closeout.invoice_line_expenses AS
SELECT e.invoice_id, l.line_no, e.source, e.source_id, e.expense_version AS version, e.amount_minor,
       e.cost_minor, e.amount_minor - e.cost_minor AS markup_minor, e.markup_percent, e.line_key, l.kind
FROM closeout_data.invoice_line_expenses e
JOIN closeout_data.current_invoice_lines l ON l.invoice_id = e.invoice_id AND l.line_key = e.line_key
WHERE e.valid_to IS NULL;

-- Which expense version each correction credits (with closeout.invoice_line_expenses, everything an
-- expense is billed for; billed = false once the correction or the invoice it credits is void).
CREATE VIEW closeout.credit_note_expenses AS
SELECT c.correction_id, c.kind, c.stripe_object_id AS credit_note_id, c.invoice_id, c.client_key, c.currency,
       c.state, e.source, e.source_id, e.expense_version AS version, e.amount_minor, e.cost_minor,
       e.amount_minor - e.cost_minor AS markup_minor, e.markup_percent, e.line_key, c.from_invoice_id,
       (c.state <> 'void' AND coalesce(i.status, '') <> 'void') AS billed
FROM closeout_data.correction_expenses e
JOIN closeout_data.corrections c ON c.correction_id = e.correction_id
LEFT JOIN closeout_data.invoices i ON i.invoice_id = c.invoice_id;

GRANT SELECT ON closeout.invoice_line_expenses, closeout.credit_note_expenses, closeout.billing_expense_options
    TO closeout_pipeline, closeout_finance;
GRANT SELECT ON closeout_data.invoice_line_expenses, closeout_data.correction_expenses TO closeout_finance;
GRANT SELECT, INSERT, UPDATE ON closeout_data.invoice_line_expenses, closeout_data.correction_expenses
    TO closeout_pipeline;
