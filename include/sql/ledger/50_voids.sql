-- An invoice voided in Stripe never was owed: its finalisation journal is reversed by a new journal (kind
-- 'void', source = the journal it reverses) mirroring its lines, linked by reverses_journal_id. A standing
-- write-off of the invoice was reversed by the previous step, so receivable and revenue both return to zero.
WITH src AS (
    SELECT f.journal_id AS original, f.currency, f.client_key, f.invoice_id,
           coalesce((SELECT max(h.recorded_at) FROM closeout_data.invoice_status_history h
                     WHERE h.invoice_id = f.invoice_id AND h.to_status = 'void'), clock_timestamp()) AS occurred_at
    FROM closeout_data.journals f
    JOIN closeout_data.invoices i ON i.invoice_id = f.invoice_id AND i.status = 'void'
    WHERE f.kind = 'invoice'
      AND NOT EXISTS (SELECT 1 FROM closeout_data.journals r WHERE r.reverses_journal_id = f.journal_id)
), posted AS (
    INSERT INTO closeout_data.journals (journal_id, kind, source_ref, currency, client_key, invoice_id, occurred_at,
                                        reverses_journal_id, ledger_run_id, description)
    SELECT closeout_data.journal_id('void', s.original), 'void', s.original, s.currency, s.client_key,
           s.invoice_id, s.occurred_at, s.original, %(run)s, 'Invoice ' || s.invoice_id || ' voided in Stripe'
    FROM src s
    ON CONFLICT DO NOTHING
    RETURNING journal_id, reverses_journal_id
)
INSERT INTO closeout_data.journal_lines (journal_id, line_no, currency, role, account_code, debit_minor, credit_minor)
SELECT p.journal_id, o.line_no, o.currency, o.role, o.account_code, o.credit_minor, o.debit_minor
FROM posted p
JOIN closeout_data.journal_lines o ON o.journal_id = p.reverses_journal_id;
