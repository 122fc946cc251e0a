-- A dispute won (closeout_data.disputes status 'won') whose reinstatement Stripe made (a balance transaction of
-- reporting category 'dispute_reversal' whose source is the dispute): the withdrawal journal is reversed by a
-- new journal (kind 'dispute_reinstatement', source = dispute_id) mirroring its lines, linked by
-- reverses_journal_id. The dispute fee stays booked (Stripe keeps it; a fee it does return is that
-- transaction's negative fee, booked back by 85_fees.sql). A lost dispute is never reversed.
WITH src AS (
    SELECT d.dispute_id, o.journal_id AS original, o.currency, o.client_key, o.invoice_id, o.charge_id,
           r.created_at AS occurred_at
    FROM closeout_data.disputes d
    JOIN closeout_data.journals o ON o.kind = 'dispute' AND o.source_ref = d.dispute_id
    CROSS JOIN LATERAL (
        SELECT min(t.created_at) AS created_at
        FROM closeout_data.stripe_balance_transactions t
        WHERE t.source_id = d.dispute_id AND t.reporting_category = 'dispute_reversal'
    ) r
    WHERE d.status = 'won' AND r.created_at IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM closeout_data.journals x WHERE x.reverses_journal_id = o.journal_id)
), posted AS (
    INSERT INTO closeout_data.journals (journal_id, kind, source_ref, currency, client_key, invoice_id, occurred_at,
                                        reverses_journal_id, ledger_run_id, description, charge_id)
    SELECT closeout_data.journal_id('dispute_reinstatement', s.dispute_id), 'dispute_reinstatement', s.dispute_id,
           s.currency, s.client_key, s.invoice_id, s.occurred_at, s.original, %(run)s,
           'Dispute ' || s.dispute_id || ' won: the withdrawn amount is reinstated', s.charge_id
    FROM src s
    ON CONFLICT DO NOTHING
    RETURNING journal_id, reverses_journal_id
)
INSERT INTO closeout_data.journal_lines (journal_id, line_no, currency, role, account_code, debit_minor, credit_minor)
SELECT p.journal_id, o.line_no, o.currency, o.role, o.account_code, o.credit_minor, o.debit_minor
FROM posted p
JOIN closeout_data.journal_lines o ON o.journal_id = p.reverses_journal_id;
