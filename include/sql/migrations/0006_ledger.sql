-- 0006 ledger: double-entry journals posted from what the warehouse already recorded (invoices finalised in
-- Stripe, payments, refunds and disputes confirmed by Stripe's events, voids and write-offs), the chart of
-- accounts they post to (a mirror of include/ledger/accounts.yaml), and the contract view closeout.ledger_lines.
--
-- Invariants enforced here rather than only in tests:
--   * every journal balances, per currency (debits = credits), with at least two lines: checked by a
--     DEFERRABLE INITIALLY DEFERRED constraint trigger, so a journal is written line by line inside one
--     transaction and judged whole at COMMIT;
--   * every line is exactly one of a debit or a credit, positive, in integer minor units;
--   * a line's currency is its journal's currency (composite foreign key);
--   * journals and lines are append-only: a correction is a new journal that names the one it reverses
--     (reverses_journal_id, at most one reversal per journal), never an edit (Kill Bill's rule);
--   * one journal per kind and source (the business identity), and its id follows from that identity, so
--     posting twice, or again after a crash, cannot post anything twice.

-- ---------------------------------------------------------------------------------------------
-- Chart of accounts (mirror of include/ledger/accounts.yaml; see closeout.ledger.accounts)
-- ---------------------------------------------------------------------------------------------
-- role: what the posting SQL means by an account ('receivable', 'revenue', ...). The posting code reads the
-- code of each role from the file; lines keep the role they were posted under, so a later change of codes in
-- the chart never changes what an old line meant. An account dropped from the file stays, inactive.
CREATE TABLE closeout_data.ledger_accounts (
    code            text PRIMARY KEY CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9._:-]*$'),
    name            text NOT NULL,
    type            text NOT NULL CHECK (type IN ('asset', 'liability', 'equity', 'revenue', 'contra_revenue',
                                                  'expense')),
    normal_balance  text GENERATED ALWAYS AS (
                        CASE WHEN type IN ('asset', 'expense', 'contra_revenue') THEN 'debit' ELSE 'credit' END
                    ) STORED,
    role            text,
    description     text,
    active          boolean NOT NULL DEFAULT true,
    config_hash     text NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE UNIQUE INDEX ledger_accounts_one_per_role ON closeout_data.ledger_accounts (role)
    WHERE role IS NOT NULL AND active;

-- One row per posting run: what it posted, per journal kind.
CREATE TABLE closeout_data.ledger_runs (
    ledger_run_id   bigserial PRIMARY KEY,
    airflow_run_id  text,
    started_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at     timestamptz,
    status          text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'success', 'failed')),
    chart_hash      text,
    counts          jsonb NOT NULL DEFAULT '{}',
    error           text
);

-- ---------------------------------------------------------------------------------------------
-- Journals and their lines
-- ---------------------------------------------------------------------------------------------
-- A journal's id is a function of its kind and source (the business identity it records).
CREATE FUNCTION closeout_data.journal_id(kind text, source_ref text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT 'jnl_' || substr(md5(kind || '|' || source_ref), 1, 24)
$$;

-- kind / source_ref:
--   invoice            invoice_id       an invoice finalised in Stripe: receivable against revenue
--   payment            payment_ref      a payment Stripe confirmed: cash clearing (or bank) against receivable
--   refund             payment_ref      money returned to the customer: refunds (contra revenue) against cash clearing
--   dispute            payment_ref      a chargeback Stripe took from the balance: disputes against cash clearing
--   writeoff           invoice_id:n     an uncollectible invoice's unpaid remainder: bad debt against receivable
--   writeoff_reversal  journal_id       a write-off undone (the invoice was paid or voided after all)
--   void               journal_id       an invoice voided in Stripe: its finalisation journal reversed
-- Later work adds kinds (fees, payouts) with a migration that widens this check.
CREATE TABLE closeout_data.journals (
    journal_id           text PRIMARY KEY,
    kind                 text NOT NULL CHECK (kind IN ('invoice', 'payment', 'refund', 'dispute', 'writeoff',
                                                       'writeoff_reversal', 'void')),
    source_ref           text NOT NULL,
    currency             text NOT NULL REFERENCES closeout_data.currencies (code),
    client_key           text,
    invoice_id           text REFERENCES closeout_data.invoices,
    occurred_at          timestamptz NOT NULL,
    posted_at            timestamptz NOT NULL DEFAULT clock_timestamp(),
    reverses_journal_id  text UNIQUE REFERENCES closeout_data.journals,
    ledger_run_id        bigint REFERENCES closeout_data.ledger_runs,
    description          text NOT NULL,
    UNIQUE (kind, source_ref),
    UNIQUE (journal_id, currency),
    CHECK (journal_id = closeout_data.journal_id(kind, source_ref)),
    CHECK ((kind IN ('void', 'writeoff_reversal')) = (reverses_journal_id IS NOT NULL))
);
CREATE INDEX journals_invoice ON closeout_data.journals (invoice_id, kind);
CREATE INDEX journals_client ON closeout_data.journals (client_key, currency);

CREATE TABLE closeout_data.journal_lines (
    journal_id    text NOT NULL,
    line_no       integer NOT NULL CHECK (line_no > 0),
    currency      text NOT NULL,
    role          text NOT NULL,
    account_code  text NOT NULL REFERENCES closeout_data.ledger_accounts (code),
    debit_minor   bigint NOT NULL DEFAULT 0,
    credit_minor  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (journal_id, line_no),
    FOREIGN KEY (journal_id, currency) REFERENCES closeout_data.journals (journal_id, currency),
    CHECK ((debit_minor > 0 AND credit_minor = 0) OR (credit_minor > 0 AND debit_minor = 0))
);
CREATE INDEX journal_lines_role ON closeout_data.journal_lines (role);

-- Judged at COMMIT (or SET CONSTRAINTS ... IMMEDIATE): every journal a transaction touched balances per currency
-- and has at least two lines. Fired by lines and by journals, so a journal without lines is refused too.
CREATE FUNCTION closeout_data.check_journal_balanced() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    SELECT j.journal_id, l.currency, coalesce(sum(l.debit_minor), 0) AS debits,
           coalesce(sum(l.credit_minor), 0) AS credits, count(l.line_no) AS lines
    INTO bad
    FROM closeout_data.journals j
    LEFT JOIN closeout_data.journal_lines l ON l.journal_id = j.journal_id
    WHERE j.journal_id = NEW.journal_id
    GROUP BY j.journal_id, l.currency
    HAVING coalesce(sum(l.debit_minor), 0) <> coalesce(sum(l.credit_minor), 0) OR count(l.line_no) < 2
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'closeout: journal % does not balance in %: debits %, credits %, % lines',
            bad.journal_id, coalesce(bad.currency, '(no lines)'), bad.debits, bad.credits, bad.lines
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER journal_lines_balanced
    AFTER INSERT ON closeout_data.journal_lines DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION closeout_data.check_journal_balanced();
CREATE CONSTRAINT TRIGGER journals_balanced
    AFTER INSERT ON closeout_data.journals DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION closeout_data.check_journal_balanced();

CREATE TRIGGER journals_append_only
    BEFORE UPDATE OR DELETE ON closeout_data.journals
    FOR EACH ROW EXECUTE FUNCTION closeout_data.refuse_history_rewrite();
CREATE TRIGGER journals_no_truncate
    BEFORE TRUNCATE ON closeout_data.journals
    FOR EACH STATEMENT EXECUTE FUNCTION closeout_data.refuse_history_rewrite();
CREATE TRIGGER journal_lines_append_only
    BEFORE UPDATE OR DELETE ON closeout_data.journal_lines
    FOR EACH ROW EXECUTE FUNCTION closeout_data.refuse_history_rewrite();
CREATE TRIGGER journal_lines_no_truncate
    BEFORE TRUNCATE ON closeout_data.journal_lines
    FOR EACH STATEMENT EXECUTE FUNCTION closeout_data.refuse_history_rewrite();

-- ---------------------------------------------------------------------------------------------
-- Public contract (DESIGN.md). Columns may be added, never renamed.
-- ---------------------------------------------------------------------------------------------
CREATE VIEW closeout.ledger_lines AS
SELECT l.journal_id, l.line_no, j.posted_at, l.account_code AS account, l.currency, l.debit_minor, l.credit_minor,
       j.source_ref,
       j.kind, j.occurred_at, j.client_key, j.invoice_id, j.reverses_journal_id, l.role, a.name AS account_name,
       a.type AS account_type, j.description, j.ledger_run_id
FROM closeout_data.journal_lines l
JOIN closeout_data.journals j ON j.journal_id = l.journal_id
JOIN closeout_data.ledger_accounts a ON a.code = l.account_code;

CREATE VIEW closeout.ledger_journals AS
SELECT journal_id, kind, source_ref, currency, client_key, invoice_id, occurred_at, posted_at, reverses_journal_id,
       (SELECT r.journal_id FROM closeout_data.journals r WHERE r.reverses_journal_id = j.journal_id)
           AS reversed_by_journal_id,
       description, ledger_run_id
FROM closeout_data.journals j;

CREATE VIEW closeout.ledger_accounts AS
SELECT code, name, type, normal_balance, role, description, active, updated_at FROM closeout_data.ledger_accounts;

CREATE VIEW closeout.ledger_runs AS
SELECT ledger_run_id, airflow_run_id, started_at, finished_at, status, chart_hash, counts, error
FROM closeout_data.ledger_runs;

-- Balance per account and currency (debit-normal accounts positive when debits exceed credits).
CREATE VIEW closeout.trial_balance AS
SELECT a.code AS account, a.name AS account_name, a.type AS account_type, l.currency,
       sum(l.debit_minor) AS debit_minor, sum(l.credit_minor) AS credit_minor,
       sum(l.debit_minor - l.credit_minor) AS balance_minor
FROM closeout_data.journal_lines l
JOIN closeout_data.ledger_accounts a ON a.code = l.account_code
GROUP BY a.code, a.name, a.type, l.currency;

-- Invariant 4: every journal balances (debits = credits per journal and currency, at least two lines).
-- The check: SELECT * FROM closeout.journal_balance WHERE NOT balanced  -- must return no row.
CREATE VIEW closeout.journal_balance AS
SELECT j.journal_id, j.kind, coalesce(l.currency, j.currency) AS currency,
       coalesce(sum(l.debit_minor), 0) AS debit_minor, coalesce(sum(l.credit_minor), 0) AS credit_minor,
       count(l.line_no) AS lines,
       coalesce(sum(l.debit_minor), 0) = coalesce(sum(l.credit_minor), 0) AND count(l.line_no) >= 2 AS balanced
FROM closeout_data.journals j
LEFT JOIN closeout_data.journal_lines l ON l.journal_id = j.journal_id
GROUP BY j.journal_id, j.kind, coalesce(l.currency, j.currency);

-- Invariant 5: accounts receivable per client (and currency) in the ledger equals the unpaid remainder of the
-- client's open invoices (total minus amount paid, as the invoices record it from Stripe's events).
-- Uncollectible invoices are written off (remainder 0), paid and void ones owe nothing.
-- The check: SELECT * FROM closeout.receivable_by_client WHERE NOT holds  -- must return no row.
CREATE VIEW closeout.receivable_by_client AS
WITH ledger AS (
    SELECT j.client_key, l.currency, sum(l.debit_minor - l.credit_minor) AS ledger_minor
    FROM closeout_data.journal_lines l
    JOIN closeout_data.journals j ON j.journal_id = l.journal_id
    WHERE l.role = 'receivable'
    GROUP BY j.client_key, l.currency
), invoices AS (
    SELECT i.client_key, i.currency, sum(i.total_minor - i.amount_paid_minor) AS unpaid_minor,
           count(*) AS open_invoices
    FROM closeout_data.invoices i
    WHERE i.status = 'open'
    GROUP BY i.client_key, i.currency
)
SELECT coalesce(l.client_key, i.client_key) AS client_key, coalesce(l.currency, i.currency) AS currency,
       coalesce(l.ledger_minor, 0) AS ledger_receivable_minor, coalesce(i.unpaid_minor, 0) AS open_unpaid_minor,
       coalesce(l.ledger_minor, 0) - coalesce(i.unpaid_minor, 0) AS difference_minor,
       coalesce(i.open_invoices, 0) AS open_invoices,
       coalesce(l.ledger_minor, 0) = coalesce(i.unpaid_minor, 0) AS holds
FROM ledger l
FULL JOIN invoices i ON i.client_key = l.client_key AND i.currency = l.currency;
