-- A customer balance Stripe applied to an invoice when it finalised it (closeout.invoice_customer_balance, from
-- the cash sync's invoice snapshots: ending_balance - starting_balance, migration 0024). One journal per invoice
-- (kind 'customer_credit_applied', source = invoice_id), in the invoice's currency, once its finalisation is
-- posted (the receivable it settles exists):
--   a credit balance (applied > 0) paid that much of the invoice: debit customer_credit (no longer owed to the
--   customer), credit receivable. Stripe's amount_due, and so the card payment, is the rest: the payment journal
--   books only that (30_payments.sql, from the invoice payment), and an invoice the balance covers in full is paid
--   with no invoice payment at all. No cash_clearing line: Stripe's own balance did not move;
--   a debit balance (applied < 0: the customer owed it) was added to the invoice: the same lines the other way.
-- Posted whatever the invoice's status since: a voided invoice gets the application reversed by
-- 49_customer_credit_unapplied.sql (Stripe gives the balance back), so the ledger shows both.
WITH src AS (
    SELECT b.invoice_id, b.stripe_invoice_id, b.client_key, b.currency, b.applied_minor, b.starting_balance_minor,
           b.ending_balance_minor,
           coalesce(p.finalized_at, b.seen_at) AS occurred_at
    FROM closeout.invoice_customer_balance b
    LEFT JOIN closeout_data.stripe_publications p ON p.invoice_id = b.invoice_id AND p.state = 'finalized'
    WHERE EXISTS (SELECT 1 FROM closeout_data.journals f WHERE f.kind = 'invoice' AND f.source_ref = b.invoice_id)
      AND NOT EXISTS (SELECT 1 FROM closeout_data.journals j
                      WHERE j.kind = 'customer_credit_applied' AND j.source_ref = b.invoice_id)
), posted AS (
    INSERT INTO closeout_data.journals (journal_id, kind, source_ref, currency, client_key, invoice_id, occurred_at,
                                        ledger_run_id, description)
    SELECT closeout_data.journal_id('customer_credit_applied', s.invoice_id), 'customer_credit_applied',
           s.invoice_id, s.currency, s.client_key, s.invoice_id, s.occurred_at, %(run)s,
           CASE WHEN s.applied_minor > 0 THEN 'Customer credit balance applied to invoice '
                ELSE 'Customer debit balance added to invoice ' END
               || s.invoice_id || ' (' || s.stripe_invoice_id || ': balance ' || s.starting_balance_minor || ' -> '
               || s.ending_balance_minor || ')'
    FROM src s
    ON CONFLICT DO NOTHING
    RETURNING journal_id, source_ref, currency
)
INSERT INTO closeout_data.journal_lines (journal_id, line_no, currency, role, account_code, debit_minor, credit_minor)
SELECT p.journal_id, l.line_no, p.currency, l.role, l.account_code, l.debit_minor, l.credit_minor
FROM posted p
JOIN src s ON s.invoice_id = p.source_ref
CROSS JOIN LATERAL (VALUES
    (1, 'customer_credit', %(customer_credit)s, greatest(s.applied_minor, 0), greatest(-s.applied_minor, 0)),
    (2, 'receivable', %(receivable)s, greatest(-s.applied_minor, 0), greatest(s.applied_minor, 0))
) AS l (line_no, role, account_code, debit_minor, credit_minor);
