-- 0012 period locks: the month-end close locks a month, after which the content of every invoice of a
-- billing period ending in or before that month is fixed, as a frozen (published) invoice's is: a
-- later edit, deletion or late entry is billed as a linked adjustment or credit on the client's next
-- draft in an unlocked period (include/sql/billing/40_desired.sql, closeout.billing.periods).
--
-- Locks are a watermark: locking a month covers every billing period whose period_end falls in or
-- before it (a weekly or semi-monthly period that straddles the month end, ending in the next month,
-- stays open). A lock is never edited or removed: the table is append-only.

CREATE TABLE closeout_data.period_locks (
    period          text PRIMARY KEY CHECK (period ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    period_start    date NOT NULL,
    period_end      date NOT NULL,
    locked_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    locked_by       text NOT NULL CHECK (btrim(locked_by) <> ''),
    close_run_id    text,
    -- what the lock fixed when it was taken (invoices whose period_end it newly covered)
    drafts          integer NOT NULL,
    frozen          integer NOT NULL,
    entries         integer NOT NULL,
    CHECK (period_start = to_date(period, 'YYYY-MM')),
    CHECK (period_end = (period_start + interval '1 month - 1 day')::date)
);

CREATE TRIGGER period_locks_append_only
    BEFORE UPDATE OR DELETE ON closeout_data.period_locks
    FOR EACH ROW EXECUTE FUNCTION closeout_data.refuse_history_rewrite();
CREATE TRIGGER period_locks_no_truncate
    BEFORE TRUNCATE ON closeout_data.period_locks
    FOR EACH STATEMENT EXECUTE FUNCTION closeout_data.refuse_history_rewrite();

-- The last day every billing period ending on or before it is locked (NULL: nothing locked yet).
CREATE FUNCTION closeout_data.locked_through() RETURNS date
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT max(period_end) FROM closeout_data.period_locks
$$;

-- The database refuses what the drafting must never do: change the lines of a locked period's draft.
-- Same guards as 0004's, with "frozen" widened to "frozen, or its period locked".
CREATE OR REPLACE FUNCTION closeout_data.guard_invoice_lines() RETURNS trigger
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
    SELECT n.invoice_id, i.period_end INTO bad
    FROM new_rows n JOIN closeout_data.invoices i ON i.invoice_id = n.invoice_id
    WHERE i.period_end <= closeout_data.locked_through() LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'closeout: invoice % is in a locked period (ending %); its lines are final',
            bad.invoice_id, bad.period_end;
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION closeout_data.guard_invoice_line_entries() RETURNS trigger
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
    SELECT n.invoice_id, n.source, n.source_id INTO bad
    FROM new_rows n JOIN closeout_data.invoices i ON i.invoice_id = n.invoice_id
    WHERE i.period_end <= closeout_data.locked_through() LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'closeout: invoice % is in a locked period; entry %:% can only be corrected on a new invoice',
            bad.invoice_id, bad.source, bad.source_id;
    END IF;
    RETURN NULL;
END $$;

-- Public: which months are locked, by whom, when, from which close run, and what each lock fixed.
CREATE VIEW closeout.period_locks AS
SELECT period, period_start, period_end, locked_at, locked_by, close_run_id, drafts, frozen, entries
FROM closeout_data.period_locks;
