-- A credit note voided in Stripe (status 'void') never credited anything: its credit_note journal is reversed
-- by a new journal (kind 'credit_note_void', source = credit_note_id) mirroring its lines, linked by
-- reverses_journal_id; the receivable, customer credit and contra revenue return to what they were. Never an
-- edit of the original.
WITH src AS (
    SELECT c.credit_note_id, o.journal_id AS original, o.currency, o.client_key, o.invoice_id,
           coalesce(c.voided_at, c.updated_at, clock_timestamp()) AS occurred_at
    FROM closeout_data.credit_notes c
    JOIN closeout_data.journals o ON o.kind = 'credit_note' AND o.source_ref = c.credit_note_id
    WHERE c.status = 'void'
      AND NOT EXISTS (SELECT 1 FROM closeout_data.journals x WHERE x.reverses_journal_id = o.journal_id)
), posted AS (
    INSERT INTO closeout_data.journals (journal_id, kind, source_ref, currency, client_key, invoice_id, occurred_at,
                                        reverses_journal_id, ledger_run_id, description)
    SELECT closeout_data.journal_id('credit_note_void', s.credit_note_id), 'credit_note_void', s.credit_note_id,
           s.currency, s.client_key, s.invoice_id, s.occurred_at, s.original, %(run)s,
           'Credit note ' || s.credit_note_id || ' voided in Stripe'
    FROM src s
    ON CONFLICT DO NOTHING
    RETURNING journal_id, reverses_journal_id
)
INSERT INTO closeout_data.journal_lines (journal_id, line_no, currency, role, account_code, debit_minor, credit_minor)
SELECT p.journal_id, o.line_no, o.currency, o.role, o.account_code, o.credit_minor, o.debit_minor
FROM posted p
JOIN closeout_data.journal_lines o ON o.journal_id = p.reverses_journal_id;
