-- 0038 expenses in the books (issue 16 item 3; docs/expense-books.md).
--
-- 1. Journal kinds (kind / source_ref):
--      expense                expense:<source>:<source_id>:v<version>:<CUR>
--                             an expense version recognised as cost (include/sql/ledger/65_expenses.sql): the
--                             difference between what the version says and what earlier versions booked, one
--                             journal per expense version and currency (a currency change reverses the old one)
--      reimbursement_payment  settlement_id (closeout_data.payout_adjustment_settlements)
--                             a reimbursement settled with a payout item that was transferred (or netted) or
--                             against another adjustment: reimbursements_payable moved into payouts_payable,
--                             which the payout's transfer journal pays from the Stripe balance
--                             (include/sql/ledger/82_reimbursement_payments.sql)
-- 2. closeout_data.expense_payer_rules: who paid an expense (the person, to be reimbursed, or the company),
--    mirrored from include/ledger/expenses.yaml by closeout.ledger.expense_policy (Harvest and Clockify expenses
--    carry no reimbursable flag). First matching rule wins; the last row is the file's default.
-- 3. closeout_data.expense_bookings: what the ledger recognised for each expense version it booked (amount,
--    cost role, who paid, by which rule), append-only. The next version's journal is the difference to the
--    latest booking; reimbursements are derived from the bookings, so the ledger and the payouts always agree
--    on what is owed to a person.
-- 4. closeout_data.payout_adjustments gains reimbursements: kind and reason 'reimbursement', cause 'expense'
--    (cause_id = <source>:<source_id>:v<version>), no payout item or invoice; positive for what the person is
--    owed, a correcting row (negative or positive, corrects_adjustment_id) when the expense is edited, deleted
--    or unapproved. Netting already adds positive adjustments to the payee's next transfer.
-- 5. Views: closeout.expense_bookings, closeout.expense_journals, closeout.unpaid_reimbursements (reimbursements
--    owed to a person who has no payout setup in the expense's currency: listed, never dropped).

-- ---------------------------------------------------------------------------------------------
-- 1. Journal kinds: widened to the union with whatever the check holds now (other migrations add kinds too)
-- ---------------------------------------------------------------------------------------------
DO $$
DECLARE
    definition text;
    kinds text[];
BEGIN
    SELECT pg_get_constraintdef(c.oid) INTO definition
    FROM pg_constraint c
    WHERE c.conrelid = 'closeout_data.journals'::regclass AND c.conname = 'journals_kind_check';
    -- 0024 wrote the list as an array literal ('{a,b}'::text[]); older forms quote each kind ('a'::text)
    IF definition ~ '[{]' THEN
        kinds := string_to_array(substring(definition from '[{]([^}]*)[}]'), ',');
    ELSE
        kinds := array(SELECT m[1] FROM regexp_matches(definition, '''([a-z_]+)''', 'g') m);
    END IF;
    IF kinds IS NULL OR NOT 'invoice' = ANY (kinds) THEN
        RAISE EXCEPTION 'journals_kind_check not understood: %', definition;
    END IF;
    kinds := array(SELECT DISTINCT unnest(kinds || ARRAY['expense', 'reimbursement_payment']) ORDER BY 1);
    ALTER TABLE closeout_data.journals DROP CONSTRAINT journals_kind_check;
    EXECUTE format('ALTER TABLE closeout_data.journals ADD CONSTRAINT journals_kind_check '
                   'CHECK (kind = ANY (%L::text[]))', kinds);
END $$;

-- ---------------------------------------------------------------------------------------------
-- 2. Who paid: the configured rules
-- ---------------------------------------------------------------------------------------------
CREATE TABLE closeout_data.expense_payer_rules (
    rule_no       integer PRIMARY KEY,
    source        text,      -- NULL: any tracker
    category      text,      -- NULL: any category
    user_key      text,      -- NULL: anyone
    reimbursable  boolean NOT NULL,
    is_default    boolean NOT NULL DEFAULT false,
    label         text NOT NULL,
    config_hash   text NOT NULL,
    CHECK (NOT is_default OR (source IS NULL AND category IS NULL AND user_key IS NULL))
);
CREATE UNIQUE INDEX expense_payer_rules_one_default ON closeout_data.expense_payer_rules (is_default)
    WHERE is_default;

-- ---------------------------------------------------------------------------------------------
-- 3. What the ledger booked per expense version
-- ---------------------------------------------------------------------------------------------
CREATE TABLE closeout_data.expense_bookings (
    source         text COLLATE "C" NOT NULL,
    source_id      text COLLATE "C" NOT NULL,
    version        integer NOT NULL,
    currency       text NOT NULL REFERENCES closeout_data.currencies (code),
    -- what is recognised as cost once this version is booked: the amount when approved and not deleted, else 0
    amount_minor   bigint NOT NULL CHECK (amount_minor >= 0),
    cost_role      text NOT NULL CHECK (cost_role IN ('project_costs', 'reimbursable_expenses')),
    paid_by        text NOT NULL CHECK (paid_by IN ('person', 'company')),
    payer_rule     text NOT NULL,
    user_key       text NOT NULL,
    client_key     text,
    change         text NOT NULL CHECK (change IN ('approved', 'edited', 'unapproved', 'deleted', 'unchanged',
                                                   'not_approved')),
    ledger_run_id  bigint REFERENCES closeout_data.ledger_runs,
    booked_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (source, source_id, version)
);
CREATE TRIGGER expense_bookings_append_only
    BEFORE UPDATE OR DELETE ON closeout_data.expense_bookings
    FOR EACH ROW EXECUTE FUNCTION closeout_data.refuse_history_rewrite();
CREATE TRIGGER expense_bookings_no_truncate
    BEFORE TRUNCATE ON closeout_data.expense_bookings
    FOR EACH STATEMENT EXECUTE FUNCTION closeout_data.refuse_history_rewrite();

-- ---------------------------------------------------------------------------------------------
-- 4. Reimbursements as payout adjustments
-- ---------------------------------------------------------------------------------------------
ALTER TABLE closeout_data.payout_adjustments
    ALTER COLUMN payout_id DROP NOT NULL,
    ALTER COLUMN invoice_id DROP NOT NULL,
    ALTER COLUMN invoice_total_minor DROP NOT NULL,
    ADD COLUMN expense_source text,
    ADD COLUMN expense_source_id text,
    ADD COLUMN expense_version integer,
    ADD COLUMN corrects_adjustment_id text REFERENCES closeout_data.payout_adjustments;

DO $$
DECLARE
    constraint_name text;
BEGIN
    FOR constraint_name IN
        SELECT c.conname FROM pg_constraint c
        WHERE c.conrelid = 'closeout_data.payout_adjustments'::regclass AND c.contype = 'c'
          AND (pg_get_constraintdef(c.oid) LIKE '%kind%' OR pg_get_constraintdef(c.oid) LIKE '%reason%')
    LOOP
        EXECUTE format('ALTER TABLE closeout_data.payout_adjustments DROP CONSTRAINT %I', constraint_name);
    END LOOP;
END $$;
ALTER TABLE closeout_data.payout_adjustments
    ADD CONSTRAINT payout_adjustments_kind_check CHECK (kind IN ('clawback', 'reversal', 'reimbursement')),
    ADD CONSTRAINT payout_adjustments_reason_check
        CHECK (reason IN ('refund', 'credit_note', 'dispute_lost', 'refund_reversed', 'credit_note_voided',
                          'dispute_reversed', 'reimbursement')),
    ADD CONSTRAINT payout_adjustments_cause_kind_check
        CHECK (cause_kind IN ('refund', 'credit_note', 'dispute', 'expense')),
    -- clawbacks are negative, reversals positive and name their clawback (as in 0018)
    ADD CONSTRAINT payout_adjustments_sign_check
        CHECK (kind = 'reimbursement' OR (kind = 'clawback') = (amount_minor < 0)),
    ADD CONSTRAINT payout_adjustments_reversal_check
        CHECK ((kind = 'reversal') = (reverses_adjustment_id IS NOT NULL)),
    -- work adjustments belong to a payout item and its invoice; reimbursements to an expense version
    ADD CONSTRAINT payout_adjustments_subject_check
        CHECK (CASE WHEN kind = 'reimbursement'
                    THEN reason = 'reimbursement' AND cause_kind = 'expense' AND payout_id IS NULL
                         AND invoice_id IS NULL AND expense_source IS NOT NULL AND expense_source_id IS NOT NULL
                         AND expense_version IS NOT NULL
                    ELSE payout_id IS NOT NULL AND invoice_id IS NOT NULL AND invoice_total_minor IS NOT NULL
                         AND reason <> 'reimbursement' AND cause_kind <> 'expense'
                         AND corrects_adjustment_id IS NULL END);
-- one reimbursement row per expense version, currency and payee
CREATE UNIQUE INDEX payout_adjustments_reimbursement_identity
    ON closeout_data.payout_adjustments (expense_source, expense_source_id, expense_version, currency, payee_key)
    WHERE kind = 'reimbursement';

-- The contract view gains the expense columns (appended).
CREATE OR REPLACE VIEW closeout.payout_adjustments AS
SELECT a.adjustment_id, a.payee_key, a.currency, a.amount_minor, a.reason, a.source_ref,
       s.settled_payout_id, a.created_at, a.invoice_id, a.payout_id, a.kind, a.cause_kind, a.cause_id,
       a.cause_amount_minor, a.invoice_total_minor, a.reverses_adjustment_id, a.description,
       coalesce(s.settled_minor, 0)::bigint AS settled_minor,
       (a.amount_minor - coalesce(s.settled_minor, 0))::bigint AS outstanding_minor,
       CASE WHEN coalesce(s.settled_minor, 0) = a.amount_minor THEN 'settled'
            WHEN coalesce(s.settled_minor, 0) = 0 THEN 'outstanding'
            ELSE 'partly_settled' END AS status,
       s.settled_at,
       a.expense_source, a.expense_source_id, a.expense_version, a.corrects_adjustment_id
FROM closeout_data.payout_adjustments a
LEFT JOIN (
    SELECT x.adjustment_id, sum(x.amount_minor) AS settled_minor, max(x.settled_at) AS settled_at,
           (array_agg(x.payout_id ORDER BY x.settled_at DESC, x.settlement_id DESC)
                FILTER (WHERE x.payout_id IS NOT NULL))[1] AS settled_payout_id
    FROM closeout_data.payout_adjustment_settlements x
    GROUP BY x.adjustment_id
) s ON s.adjustment_id = a.adjustment_id;

-- ---------------------------------------------------------------------------------------------
-- 5. Views for finance
-- ---------------------------------------------------------------------------------------------
CREATE VIEW closeout.expense_bookings AS
SELECT b.source, b.source_id, b.version, b.currency, b.amount_minor, b.cost_role, b.paid_by, b.payer_rule,
       b.user_key, b.client_key, b.change, b.ledger_run_id, b.booked_at,
       'expense:' || b.source || ':' || b.source_id || ':v' || b.version AS expense_ref
FROM closeout_data.expense_bookings b;

-- Every expense journal with the expense version it books.
CREATE VIEW closeout.expense_journals AS
SELECT b.source, b.source_id, b.version, b.change, j.journal_id, j.currency, j.occurred_at, j.posted_at,
       j.description, j.source_ref
FROM closeout_data.journals j
JOIN closeout_data.expense_bookings b
  ON j.kind = 'expense'
 AND j.source_ref = 'expense:' || b.source || ':' || b.source_id || ':v' || b.version || ':' || j.currency;

-- Reimbursements owed to a person that cannot be paid out: no payee configuration for the person, the payee
-- is inactive, or it is paid in another currency than the expense's. One row per person and currency:
-- amount_minor is what the books owe them (their latest bookings paid by the person, less any reimbursement
-- already recorded as a payout adjustment), expenses the expense versions concerned.
CREATE VIEW closeout.unpaid_reimbursements AS
WITH latest AS (
    SELECT DISTINCT ON (b.source, b.source_id) b.*
    FROM closeout_data.expense_bookings b
    ORDER BY b.source, b.source_id, b.version DESC
), owed AS (
    SELECT l.source, l.source_id, l.version, l.user_key, l.currency,
           l.amount_minor - coalesce((SELECT sum(a.amount_minor) FROM closeout_data.payout_adjustments a
                                      WHERE a.kind = 'reimbursement' AND a.expense_source = l.source
                                        AND a.expense_source_id = l.source_id AND a.currency = l.currency), 0)
               AS owed_minor
    FROM latest l
    WHERE l.paid_by = 'person' AND l.amount_minor > 0
)
SELECT o.user_key AS person, o.currency, sum(o.owed_minor)::bigint AS amount_minor,
       count(*)::integer AS expense_count,
       string_agg('expense:' || o.source || ':' || o.source_id || ':v' || o.version, ', '
                  ORDER BY o.source, o.source_id) AS expenses,
       CASE WHEN p.payee_key IS NULL THEN 'no_payee_config'
            WHEN NOT p.active THEN 'payee_inactive'
            ELSE 'payee_currency_differs' END AS reason,
       p.currency AS payee_currency
FROM owed o
LEFT JOIN closeout_data.payout_payees p ON p.payee_key = o.user_key
WHERE o.owed_minor > 0
  AND (p.payee_key IS NULL OR NOT p.active OR p.currency <> o.currency)
GROUP BY o.user_key, o.currency, p.payee_key, p.active, p.currency;

GRANT SELECT ON closeout.expense_bookings, closeout.expense_journals, closeout.unpaid_reimbursements,
    closeout.payout_adjustments TO closeout_pipeline, closeout_finance;
GRANT SELECT ON closeout_data.expense_payer_rules, closeout_data.expense_bookings TO closeout_finance;
GRANT SELECT, INSERT, DELETE ON closeout_data.expense_payer_rules TO closeout_pipeline;
GRANT SELECT, INSERT ON closeout_data.expense_bookings TO closeout_pipeline;
