-- 0017 the cash leg in the books (issue 13 item 3): Stripe fees, currency conversion and realised FX, refunds
-- and disputes from Stripe's own objects and balance transactions (closeout_data.refunds / disputes /
-- stripe_balance_transactions of 0016), credit notes and their voids, Stripe payouts to the bank.
-- The posting SQL is include/sql/ledger/*.sql; docs/ledger.md says what each journal means for finance.
--
-- 1. Journal kinds (kind / source_ref):
--      fee                    balance_transaction_id  a Stripe fee: the fee of any balance transaction (charge,
--                                                     dispute, payout ...) and 'stripe_fee' transactions
--                                                     (processor_fees or dispute_fees against cash_clearing)
--      fx_conversion          balance_transaction_id  a foreign charge / refund / dispute settled in another
--                                                     currency: cash_clearing moved from the presentment currency
--                                                     to the settlement currency through fx_clearing (the only
--                                                     kind whose lines are in two currencies)
--      fx_realised            charge_id:n             the settlement side of fx_clearing closed to fx_gain_loss
--                                                     once the charge's presentment side netted to zero (n-th)
--      refund_failure         refund_id               a refund that failed: its refund journal reversed
--      dispute_reinstatement  dispute_id              a dispute won: its withdrawal reversed (the fee stays)
--      credit_note            credit_note_id          a credit note issued: contra revenue (credit_notes) against
--                                                     receivable / refunds / customer_credit / cash
--      credit_note_void       credit_note_id          a credit note voided: its credit_note journal reversed
--      stripe_payout          payout_id               a Stripe payout created: Stripe balance -> in transit
--                                                     (bank_clearing), when Stripe's balance drops
--      stripe_payout_paid     payout_id               the payout arrived: in transit -> bank (cash)
--      stripe_payout_failure  payout_id               the payout failed or was canceled: the money is back in the
--                                                     Stripe balance (reverses stripe_payout)
--    'refund' changes source: refund_id (closeout_data.refunds) instead of refund:<charge>:<cumulative> of
--    invoice_payments; journals posted under the old identity stay and are not posted again (see
--    include/sql/ledger/40_refunds.sql). 'dispute' keeps its identity (dispute_id).
-- 2. A journal may have lines in more than one currency (fx_conversion only): the line -> journal foreign key
--    no longer includes the currency; the deferred balance trigger checks debits = credits per journal AND
--    currency (invariant 4), and that only fx_conversion journals mix currencies.
-- 3. journals.charge_id: the Stripe charge a cash journal belongs to (fees, conversions, realised FX, refunds,
--    disputes), so fx_clearing can be followed per charge.
-- 4. closeout.ledger_stripe_balance (invariant 7): the ledger's Stripe balance (cash_clearing) per currency;
--    closeout.ledger_stripe_fees: fees booked per currency (invariant 7's "fees booked equal Stripe's fees").
-- 5. closeout.receivable_by_client (invariant 5): an open invoice's unpaid remainder is less its issued credit
--    notes' pre-payment amounts (Stripe takes them off amount_remaining; closeout's total stays as invoiced).

ALTER TABLE closeout_data.journals DROP CONSTRAINT journals_kind_check;
ALTER TABLE closeout_data.journals ADD CONSTRAINT journals_kind_check
    CHECK (kind IN ('invoice', 'payment', 'refund', 'dispute', 'writeoff', 'writeoff_reversal', 'void',
                    'payout_accrual', 'payout_transfer',
                    'fee', 'fx_conversion', 'fx_realised', 'refund_failure', 'dispute_reinstatement',
                    'credit_note', 'credit_note_void', 'stripe_payout', 'stripe_payout_paid',
                    'stripe_payout_failure'));

-- Reversal kinds name the journal they reverse; no other kind does.
ALTER TABLE closeout_data.journals DROP CONSTRAINT journals_check1;
ALTER TABLE closeout_data.journals ADD CONSTRAINT journals_reversal_check
    CHECK ((kind IN ('void', 'writeoff_reversal', 'refund_failure', 'dispute_reinstatement', 'credit_note_void',
                     'stripe_payout_failure')) = (reverses_journal_id IS NOT NULL));

ALTER TABLE closeout_data.journals ADD COLUMN charge_id text;
CREATE INDEX journals_charge ON closeout_data.journals (charge_id, kind) WHERE charge_id IS NOT NULL;

-- Lines name their journal and a known currency; the currency may differ from the journal's (fx_conversion).
ALTER TABLE closeout_data.journal_lines DROP CONSTRAINT journal_lines_journal_id_currency_fkey;
ALTER TABLE closeout_data.journal_lines ADD CONSTRAINT journal_lines_journal_fkey
    FOREIGN KEY (journal_id) REFERENCES closeout_data.journals (journal_id);
ALTER TABLE closeout_data.journal_lines ADD CONSTRAINT journal_lines_currency_fkey
    FOREIGN KEY (currency) REFERENCES closeout_data.currencies (code);

-- Judged at COMMIT as before: per journal and currency debits = credits, at least two lines per currency, and
-- a journal in more than one currency is a currency conversion.
CREATE OR REPLACE FUNCTION closeout_data.check_journal_balanced() RETURNS trigger
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
    SELECT j.journal_id, j.kind, j.currency, string_agg(DISTINCT l.currency, ', ') AS currencies
    INTO bad
    FROM closeout_data.journals j
    JOIN closeout_data.journal_lines l ON l.journal_id = j.journal_id
    WHERE j.journal_id = NEW.journal_id
    GROUP BY j.journal_id, j.kind, j.currency
    HAVING (j.kind <> 'fx_conversion' AND (count(DISTINCT l.currency) > 1 OR min(l.currency) <> j.currency))
        OR (j.kind = 'fx_conversion' AND NOT bool_or(l.currency = j.currency))
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'closeout: journal % (%) in % has lines in %: only a currency conversion mixes currencies',
            bad.journal_id, bad.kind, bad.currency, bad.currencies USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;

-- ---------------------------------------------------------------------------------------------
-- Views (contract columns unchanged; columns appended)
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE VIEW closeout.ledger_lines AS
SELECT l.journal_id, l.line_no, j.posted_at, l.account_code AS account, l.currency, l.debit_minor, l.credit_minor,
       j.source_ref,
       j.kind, j.occurred_at, j.client_key, j.invoice_id, j.reverses_journal_id, l.role, a.name AS account_name,
       a.type AS account_type, j.description, j.ledger_run_id,
       j.charge_id, j.currency AS journal_currency
FROM closeout_data.journal_lines l
JOIN closeout_data.journals j ON j.journal_id = l.journal_id
JOIN closeout_data.ledger_accounts a ON a.code = l.account_code;

CREATE OR REPLACE VIEW closeout.ledger_journals AS
SELECT journal_id, kind, source_ref, currency, client_key, invoice_id, occurred_at, posted_at, reverses_journal_id,
       (SELECT r.journal_id FROM closeout_data.journals r WHERE r.reverses_journal_id = j.journal_id)
           AS reversed_by_journal_id,
       description, ledger_run_id,
       charge_id
FROM closeout_data.journals j;

-- Invariant 7, the ledger's side: the Stripe balance as the ledger holds it (role cash_clearing), per currency.
-- Compared with Stripe's balance built from its balance transactions (the sum of net per settlement currency) by
-- the reconciliation; cash_clearing in a presentment-only currency nets to zero once conversions are posted.
CREATE VIEW closeout.ledger_stripe_balance AS
SELECT l.currency, sum(l.debit_minor - l.credit_minor) AS ledger_balance_minor,
       sum(l.debit_minor) AS debit_minor, sum(l.credit_minor) AS credit_minor, count(DISTINCT l.journal_id) AS journals,
       max(j.posted_at) AS last_posted_at
FROM closeout_data.journal_lines l
JOIN closeout_data.journals j ON j.journal_id = l.journal_id
WHERE l.role = 'cash_clearing'
GROUP BY l.currency;

-- Invariant 7, fees: Stripe fees booked per settlement currency (processor and dispute fees, net of fees Stripe
-- returned), to compare with the sum of Stripe's fee (and stripe_fee transactions) per currency.
CREATE VIEW closeout.ledger_stripe_fees AS
SELECT l.currency, sum(l.debit_minor - l.credit_minor) AS fees_minor,
       sum(l.debit_minor - l.credit_minor) FILTER (WHERE l.role = 'processor_fees') AS processor_fees_minor,
       sum(l.debit_minor - l.credit_minor) FILTER (WHERE l.role = 'dispute_fees') AS dispute_fees_minor,
       count(DISTINCT l.journal_id) AS journals
FROM closeout_data.journal_lines l
JOIN closeout_data.journals j ON j.journal_id = l.journal_id
WHERE j.kind = 'fee' AND l.role IN ('processor_fees', 'dispute_fees')
GROUP BY l.currency;

-- Invariant 5 with credit notes: an open invoice owes its total less what was paid less its issued credit notes'
-- pre-payment part (Stripe reduces amount_remaining by it; the credit_note journal credits the receivable).
CREATE OR REPLACE VIEW closeout.receivable_by_client AS
WITH ledger AS (
    SELECT j.client_key, l.currency, sum(l.debit_minor - l.credit_minor) AS ledger_minor
    FROM closeout_data.journal_lines l
    JOIN closeout_data.journals j ON j.journal_id = l.journal_id
    WHERE l.role = 'receivable'
    GROUP BY j.client_key, l.currency
), credited AS (
    SELECT c.invoice_id, sum(c.pre_payment_amount_minor) AS pre_payment_minor
    FROM closeout_data.credit_notes c
    WHERE c.status = 'issued' AND c.invoice_id IS NOT NULL
    GROUP BY c.invoice_id
), invoices AS (
    SELECT i.client_key, i.currency,
           sum(i.total_minor - i.amount_paid_minor - coalesce(c.pre_payment_minor, 0)) AS unpaid_minor,
           count(*) AS open_invoices
    FROM closeout_data.invoices i
    LEFT JOIN credited c ON c.invoice_id = i.invoice_id
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
