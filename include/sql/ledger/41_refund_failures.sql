-- A refund that failed (closeout_data.refunds status 'failed': the bank could not return the money, so Stripe
-- put it back in the balance with a 'refund_failure' balance transaction; or 'canceled' after its transaction
-- was made, returned the same way): its refund journal is reversed by a
-- new journal (kind 'refund_failure', source = refund_id) mirroring its lines, linked by reverses_journal_id.
-- Posted once the failure's balance transaction is recorded, so the ledger's Stripe balance follows Stripe's.
-- A refund booked by an old invoice_payments journal (before 0017) has no refund_id journal to reverse: its
-- failure is left to finance (docs/ledger.md).
WITH src AS (
    SELECT r.refund_id, o.journal_id AS original, o.currency, o.client_key, o.invoice_id, o.charge_id,
           f.created_at AS occurred_at, r.status
    FROM closeout_data.refunds r
    JOIN closeout_data.journals o ON o.kind = 'refund' AND o.source_ref = r.refund_id
    CROSS JOIN LATERAL (
        SELECT min(t.created_at) AS created_at
        FROM closeout_data.stripe_balance_transactions t
        WHERE t.balance_transaction_id = r.failure_balance_transaction_id
           OR (t.source_id = r.refund_id AND (t.type = 'refund_failure' OR t.reporting_category = 'refund_failure'))
    ) f
    WHERE r.status IN ('failed', 'canceled') AND f.created_at IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM closeout_data.journals x WHERE x.reverses_journal_id = o.journal_id)
), posted AS (
    INSERT INTO closeout_data.journals (journal_id, kind, source_ref, currency, client_key, invoice_id, occurred_at,
                                        reverses_journal_id, ledger_run_id, description, charge_id)
    SELECT closeout_data.journal_id('refund_failure', s.refund_id), 'refund_failure', s.refund_id, s.currency,
           s.client_key, s.invoice_id, s.occurred_at, s.original, %(run)s,
           'Refund ' || s.refund_id || ' ' || s.status || ': the money is back in the Stripe balance', s.charge_id
    FROM src s
    ON CONFLICT DO NOTHING
    RETURNING journal_id, reverses_journal_id
)
INSERT INTO closeout_data.journal_lines (journal_id, line_no, currency, role, account_code, debit_minor, credit_minor)
SELECT p.journal_id, o.line_no, o.currency, o.role, o.account_code, o.credit_minor, o.debit_minor
FROM posted p
JOIN closeout_data.journal_lines o ON o.journal_id = p.reverses_journal_id;
