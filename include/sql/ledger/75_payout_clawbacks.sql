-- Contractor payouts, the clawbacks (closeout.payout_adjustments, migration 0018): work paid out on an invoice
-- that then gave money back (refund, credit note, lost dispute) is no longer a cost; the payee owes it back
-- until their next payouts net it. Posted under the existing kind 'payout_accrual' (an accrual's correction,
-- source = adjustment_id: no payout id looks like one, so it never meets the item accruals of 70_*):
--   clawback (amount < 0)   debit payouts_payable, credit contractor_costs   (the payable turns into what the
--                                                                              payee owes: a debit balance)
--   reversal (amount > 0)   debit contractor_costs, credit payouts_payable   (the cost and the debt come back)
-- Netting itself posts nothing: the new item accrues its whole cost (70_*), and its transfer journal (80_*)
-- pays only what the transfer carried (the request's amount), so the netted part stays in payouts_payable,
-- where it meets the clawback's debit. Once per adjustment; in the payee's currency; no receivable line.
WITH src AS (
    SELECT a.adjustment_id, a.payout_id, a.invoice_id, a.payee_key, a.currency, a.amount_minor, a.created_at,
           a.description
    FROM closeout_data.payout_adjustments a
    WHERE a.kind <> 'reimbursement'  -- booked by the expense journals (65_*) and 82_reimbursement_payments.sql
      AND NOT EXISTS (SELECT 1 FROM closeout_data.journals j
                      WHERE j.kind = 'payout_accrual' AND j.source_ref = a.adjustment_id)
), posted AS (
    INSERT INTO closeout_data.journals (journal_id, kind, source_ref, currency, invoice_id, occurred_at,
                                        ledger_run_id, description)
    SELECT closeout_data.journal_id('payout_accrual', s.adjustment_id), 'payout_accrual', s.adjustment_id,
           s.currency, s.invoice_id, s.created_at, %(run)s, s.description
    FROM src s
    ON CONFLICT DO NOTHING
    RETURNING journal_id, source_ref, currency
)
INSERT INTO closeout_data.journal_lines (journal_id, line_no, currency, role, account_code, debit_minor, credit_minor)
SELECT p.journal_id, l.line_no, p.currency, l.role, l.account_code, l.debit_minor, l.credit_minor
FROM posted p
JOIN src s ON s.adjustment_id = p.source_ref
CROSS JOIN LATERAL (VALUES
    (1, CASE WHEN s.amount_minor < 0 THEN 'payouts_payable' ELSE 'contractor_costs' END,
        CASE WHEN s.amount_minor < 0 THEN %(payouts_payable)s ELSE %(contractor_costs)s END,
        abs(s.amount_minor), 0::bigint),
    (2, CASE WHEN s.amount_minor < 0 THEN 'contractor_costs' ELSE 'payouts_payable' END,
        CASE WHEN s.amount_minor < 0 THEN %(contractor_costs)s ELSE %(payouts_payable)s END,
        0::bigint, abs(s.amount_minor))
) AS l (line_no, role, account_code, debit_minor, credit_minor);
