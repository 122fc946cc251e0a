-- An invoice voided after Stripe applied the customer's balance to it: Stripe gives the balance back to the
-- customer (an unapplied_from_invoice customer balance transaction), so its customer_credit_applied journal is
-- reversed by a new journal (kind 'customer_credit_unapplied', source = the journal it reverses) mirroring its
-- lines, linked by reverses_journal_id. With the void of the invoice's finalisation (50_voids.sql) the invoice's
-- receivable returns to zero and the credit is owed to the customer again.
WITH src AS (
    SELECT a.journal_id AS original, a.currency, a.client_key, a.invoice_id,
           coalesce((SELECT max(h.recorded_at) FROM closeout_data.invoice_status_history h
                     WHERE h.invoice_id = a.invoice_id AND h.to_status = 'void'), clock_timestamp()) AS occurred_at
    FROM closeout_data.journals a
    JOIN closeout_data.invoices i ON i.invoice_id = a.invoice_id AND i.status = 'void'
    WHERE a.kind = 'customer_credit_applied'
      AND NOT EXISTS (SELECT 1 FROM closeout_data.journals r WHERE r.reverses_journal_id = a.journal_id)
), posted AS (
    INSERT INTO closeout_data.journals (journal_id, kind, source_ref, currency, client_key, invoice_id, occurred_at,
                                        reverses_journal_id, ledger_run_id, description)
    SELECT closeout_data.journal_id('customer_credit_unapplied', s.original), 'customer_credit_unapplied',
           s.original, s.currency, s.client_key, s.invoice_id, s.occurred_at, s.original, %(run)s,
           'Invoice ' || s.invoice_id || ' voided in Stripe: the customer balance it used is given back'
    FROM src s
    ON CONFLICT DO NOTHING
    RETURNING journal_id, reverses_journal_id
)
INSERT INTO closeout_data.journal_lines (journal_id, line_no, currency, role, account_code, debit_minor, credit_minor)
SELECT p.journal_id, o.line_no, o.currency, o.role, o.account_code, o.credit_minor, o.debit_minor
FROM posted p
JOIN closeout_data.journal_lines o ON o.journal_id = p.reverses_journal_id;
