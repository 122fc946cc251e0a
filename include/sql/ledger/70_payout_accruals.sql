-- Contractor payouts, the accrual: a payout item planned by closeout_payouts is the cost of paid work, owed to
-- the contractor from then on. Debit contractor_costs, credit payouts_payable, for the item's amount in the
-- payee's currency (kind 'payout_accrual', source = payout_id). Posted once per item, whatever happens to it
-- later: a transfer Stripe refused still leaves the contractor owed. No receivable line: invariant 5 is
-- untouched. The journal names the invoice whose work it pays, not a client (no line is per client).
WITH src AS (
    SELECT i.payout_id, i.invoice_id, i.payee_key, i.currency, i.amount_minor, i.planned_at
    FROM closeout_data.payout_items i
    WHERE NOT EXISTS (SELECT 1 FROM closeout_data.journals j
                      WHERE j.kind = 'payout_accrual' AND j.source_ref = i.payout_id)
), posted AS (
    INSERT INTO closeout_data.journals (journal_id, kind, source_ref, currency, invoice_id, occurred_at,
                                        ledger_run_id, description)
    SELECT closeout_data.journal_id('payout_accrual', s.payout_id), 'payout_accrual', s.payout_id, s.currency,
           s.invoice_id, s.planned_at, %(run)s,
           'Payout ' || s.payout_id || ' owed to ' || s.payee_key || ' for work on invoice ' || s.invoice_id
    FROM src s
    ON CONFLICT DO NOTHING
    RETURNING journal_id, source_ref, currency
)
INSERT INTO closeout_data.journal_lines (journal_id, line_no, currency, role, account_code, debit_minor, credit_minor)
SELECT p.journal_id, l.line_no, p.currency, l.role, l.account_code, l.debit_minor, l.credit_minor
FROM posted p
JOIN src s ON s.payout_id = p.source_ref
CROSS JOIN LATERAL (VALUES
    (1, 'contractor_costs', %(contractor_costs)s, s.amount_minor, 0::bigint),
    (2, 'payouts_payable', %(payouts_payable)s, 0::bigint, s.amount_minor)
) AS l (line_no, role, account_code, debit_minor, credit_minor);
