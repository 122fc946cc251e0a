-- Refunds, from Stripe's refund objects (closeout_data.refunds) and their balance transactions: one journal per
-- refund (kind 'refund', source = refund_id), whoever made it (closeout, a credit note's refund_amount, the
-- Stripe Dashboard). Debit refunds (contra revenue), credit cash_clearing, for the refund's amount in its own
-- currency (the charge's presentment currency, as the payment was booked); a refund Stripe settles in another
-- currency is moved there by its fx_conversion journal (86_fx_conversions.sql). The receivable is untouched: a
-- refund does not change what the invoice owed.
-- Posted when Stripe's balance moved (the refund's balance transaction is recorded; a pending refund already has
-- one) and its charge's payment is in the books; a refund that later fails is reversed by 41_refund_failures.sql.
--
-- One source of truth: closeout_data.invoice_payments' refund rows (from charge.refunded, keyed
-- refund:<charge>:<cumulative amount refunded>) are no longer posted. Journals posted from them before this
-- change stay; the refunds they covered are not posted again: per charge, refunds in creation order whose
-- cumulative amount is within the largest cumulative amount those old journals booked are left out.
WITH legacy AS (
    SELECT split_part(j.source_ref, ':', 2) AS charge_id, max(split_part(j.source_ref, ':', 3)::bigint) AS booked
    FROM closeout_data.journals j
    WHERE j.kind = 'refund' AND j.source_ref LIKE 'refund:%%:%%'
    GROUP BY 1
), covered AS (
    SELECT c.refund_id
    FROM (
        SELECT r.refund_id, g.booked,
               sum(r.amount_minor) OVER (PARTITION BY r.charge_id ORDER BY r.created_at, r.refund_id) AS cumulative
        FROM closeout_data.refunds r
        JOIN legacy g ON g.charge_id = r.charge_id
        WHERE r.status NOT IN ('failed', 'canceled')
    ) c
    WHERE c.cumulative <= c.booked
), src AS (
    SELECT r.refund_id, r.charge_id, upper(r.currency) AS currency, r.amount_minor, r.credit_note_id,
           t.created_at AS occurred_at, b.invoice_id, b.client_key
    FROM closeout_data.refunds r
    JOIN closeout_data.stripe_balance_transactions t ON t.balance_transaction_id = r.balance_transaction_id
    CROSS JOIN LATERAL (
        SELECT p.invoice_id, i.client_key
        FROM closeout_data.invoice_payments p
        JOIN closeout_data.invoices i ON i.invoice_id = p.invoice_id
        JOIN closeout_data.journals pj ON pj.kind = 'payment' AND pj.source_ref = p.payment_ref
        WHERE p.kind = 'payment' AND p.charge_id = r.charge_id
        ORDER BY p.occurred_at
        LIMIT 1
    ) b
    WHERE r.amount_minor > 0
      AND NOT EXISTS (SELECT 1 FROM closeout_data.journals j WHERE j.kind = 'refund' AND j.source_ref = r.refund_id)
      AND NOT EXISTS (SELECT 1 FROM covered c WHERE c.refund_id = r.refund_id)
), posted AS (
    INSERT INTO closeout_data.journals (journal_id, kind, source_ref, currency, client_key, invoice_id, occurred_at,
                                        ledger_run_id, description, charge_id)
    SELECT closeout_data.journal_id('refund', s.refund_id), 'refund', s.refund_id, s.currency, s.client_key,
           s.invoice_id, s.occurred_at, %(run)s,
           'Refund ' || s.refund_id || ' on charge ' || s.charge_id || ' of invoice ' || s.invoice_id
               || coalesce(' (credit note ' || s.credit_note_id || ')', ''),
           s.charge_id
    FROM src s
    ON CONFLICT DO NOTHING
    RETURNING journal_id, source_ref, currency
)
INSERT INTO closeout_data.journal_lines (journal_id, line_no, currency, role, account_code, debit_minor, credit_minor)
SELECT p.journal_id, l.line_no, p.currency, l.role, l.account_code, l.debit_minor, l.credit_minor
FROM posted p
JOIN src s ON s.refund_id = p.source_ref
CROSS JOIN LATERAL (VALUES
    (1, 'refunds', %(refunds)s, s.amount_minor, 0::bigint),
    (2, 'cash_clearing', %(cash_clearing)s, 0::bigint, s.amount_minor)
) AS l (line_no, role, account_code, debit_minor, credit_minor);
