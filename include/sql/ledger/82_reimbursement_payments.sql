-- Reimbursements paid (migration 0038, docs/expense-books.md). A reimbursement (closeout.payout_adjustments,
-- kind 'reimbursement', from include/sql/payouts/38_reimbursements.sql) is settled by netting: added to a
-- payee's new payout item's transfer, or set off against an adjustment of the other sign (a clawback). Each
-- settlement moves what it settled from reimbursements_payable (booked when the expense was approved, 65_*)
-- into payouts_payable, which the item's transfer journal (80_*) pays from the Stripe balance for the whole
-- transfer: together, reimbursements_payable against cash. A settlement on an item posts once the item was
-- transferred (or settled wholly by netting); a set-off posts at once. Negative settlements (a reimbursement
-- corrected down after it was paid, taken off the next transfer) post the other way round.
-- Kind 'reimbursement_payment', source = settlement_id, in the adjustment's currency. No receivable line.
WITH src AS (
    SELECT s.settlement_id, s.amount_minor, a.currency, a.payee_key, a.adjustment_id, a.source_ref, s.payout_id,
           s.offset_adjustment_id, coalesce(i.transferred_at, s.settled_at) AS occurred_at
    FROM closeout_data.payout_adjustment_settlements s
    JOIN closeout_data.payout_adjustments a ON a.adjustment_id = s.adjustment_id AND a.kind = 'reimbursement'
    LEFT JOIN closeout_data.payout_items i ON i.payout_id = s.payout_id
    WHERE (s.offset_adjustment_id IS NOT NULL OR i.status IN ('transferred', 'netted'))
      AND NOT EXISTS (SELECT 1 FROM closeout_data.journals j
                      WHERE j.kind = 'reimbursement_payment' AND j.source_ref = s.settlement_id)
), posted AS (
    INSERT INTO closeout_data.journals (journal_id, kind, source_ref, currency, occurred_at, ledger_run_id,
                                        description)
    SELECT closeout_data.journal_id('reimbursement_payment', s.settlement_id), 'reimbursement_payment',
           s.settlement_id, s.currency, s.occurred_at, %(run)s,
           'Reimbursement ' || s.adjustment_id || ' (' || s.source_ref || ') to ' || s.payee_key
               || coalesce(' paid with payout ' || s.payout_id, ' set off against adjustment ' || s.offset_adjustment_id)
    FROM src s
    ON CONFLICT DO NOTHING
    RETURNING journal_id, source_ref, currency
)
INSERT INTO closeout_data.journal_lines (journal_id, line_no, currency, role, account_code, debit_minor, credit_minor)
SELECT p.journal_id, l.line_no, p.currency, l.role, l.account_code, l.debit_minor, l.credit_minor
FROM posted p
JOIN src s ON s.settlement_id = p.source_ref
CROSS JOIN LATERAL (VALUES
    (1, CASE WHEN s.amount_minor > 0 THEN 'reimbursements_payable' ELSE 'payouts_payable' END,
        CASE WHEN s.amount_minor > 0 THEN %(reimbursements_payable)s ELSE %(payouts_payable)s END,
        abs(s.amount_minor), 0::bigint),
    (2, CASE WHEN s.amount_minor > 0 THEN 'payouts_payable' ELSE 'reimbursements_payable' END,
        CASE WHEN s.amount_minor > 0 THEN %(payouts_payable)s ELSE %(reimbursements_payable)s END,
        0::bigint, abs(s.amount_minor))
) AS l (line_no, role, account_code, debit_minor, credit_minor);
