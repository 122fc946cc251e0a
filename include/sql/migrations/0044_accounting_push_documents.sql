-- 0044 accounting push documents (issue 17 items 4 and 7): credit notes and Stripe payouts pushed as the accounting
-- systems' own documents, and Stripe fees pushed as one journal per day and currency.
--
-- * closeout_data.accounting_document_journals: the ledger journals a pushed document books there, so they are
--   never pushed as journals too (no double booking): a credit note that only lowers what its invoice owes (its
--   one credit line is receivable) goes as a QuickBooks CreditMemo / Xero ACCRECCREDIT credit note applied to the
--   invoice (object_kind credit_note); a credit note that refunds cash, credits the customer's balance or was
--   repaid outside Stripe stays a journal. A Stripe payout's move to the bank (in transit, then arrived) goes as a
--   QuickBooks Deposit / Xero BankTransfer from the account it credits to the account it debits (object_kind
--   deposit).
-- * closeout_data.accounting_push_members: which closeout journals each pushed group journal carries (Stripe fees
--   per day and currency, ref 'fees:<date>:<currency>[:<n>]'), so every figure there traces back to its ledger
--   journals; a journal part is carried by one pushed group at most (the primary key), so a fee booked after its
--   day was pushed goes in a new linked group, never twice.

CREATE VIEW closeout_data.accounting_document_journals AS
SELECT j.journal_id, j.currency, 'credit_note'::text AS object_kind
FROM closeout_data.journals j
WHERE j.kind = 'credit_note'
  AND NOT EXISTS (SELECT 1 FROM closeout_data.journal_lines l
                  WHERE l.journal_id = j.journal_id AND l.credit_minor > 0 AND l.role <> 'receivable')
UNION ALL
SELECT j.journal_id, j.currency, 'deposit'::text
FROM closeout_data.journals j
WHERE j.kind IN ('stripe_payout', 'stripe_payout_paid')
  AND (SELECT count(*) FILTER (WHERE l.debit_minor > 0) = 1 AND count(*) FILTER (WHERE l.credit_minor > 0) = 1
       FROM closeout_data.journal_lines l WHERE l.journal_id = j.journal_id);

CREATE TABLE closeout_data.accounting_push_members (
    system        text NOT NULL CHECK (system IN ('quickbooks', 'xero')),
    company_id    text NOT NULL,
    object_kind   text NOT NULL,
    -- the pushed group's ref (its accounting_links closeout_ref)
    closeout_ref  text NOT NULL,
    journal_id    text NOT NULL,
    currency      text NOT NULL,
    -- the member's debits in its currency, minor units (what it adds to the group)
    amount_minor  bigint NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (system, company_id, journal_id, currency)
);
CREATE INDEX accounting_push_members_group
    ON closeout_data.accounting_push_members (system, company_id, object_kind, closeout_ref);

-- What finance traces a grouped journal there back with: its ref, and every ledger journal it carries.
CREATE VIEW closeout.accounting_push_members AS
SELECT m.system, m.company_id, m.object_kind, m.closeout_ref, m.journal_id, m.currency, m.amount_minor,
       m.recorded_at, l.external_id
FROM closeout_data.accounting_push_members m
LEFT JOIN closeout_data.accounting_links l
       ON l.system = m.system AND l.company_id = m.company_id AND l.object_kind = m.object_kind
      AND l.closeout_ref = m.closeout_ref;

GRANT SELECT ON closeout_data.accounting_document_journals TO closeout_pipeline, closeout_finance;
GRANT SELECT, INSERT ON closeout_data.accounting_push_members TO closeout_pipeline;
GRANT SELECT ON closeout_data.accounting_push_members, closeout.accounting_push_members
    TO closeout_pipeline, closeout_finance;
