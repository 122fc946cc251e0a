-- Contractor payouts, the payment: a payout item whose Stripe transfer closeout recorded (status
-- 'transferred', with the transfer id) settles what its accrual made payable. Debit payouts_payable, credit
-- cash_clearing (a transfer to a connected account leaves the platform's Stripe balance, not the bank), for
-- the item's amount (kind 'payout_transfer', source = payout_id). Only once the accrual is posted, so the
-- payable never goes below zero; the accrual step runs first in the same posting, so both land together.
WITH src AS (
    SELECT i.payout_id, i.invoice_id, i.payee_key, i.currency, (i.request->>'amount')::bigint AS amount_minor, i.external_id,
           coalesce(i.transferred_at, clock_timestamp()) AS occurred_at
    FROM closeout_data.payout_items i
    WHERE i.status = 'transferred'
      AND EXISTS (SELECT 1 FROM closeout_data.journals a
                  WHERE a.kind = 'payout_accrual' AND a.source_ref = i.payout_id)
      AND NOT EXISTS (SELECT 1 FROM closeout_data.journals j
                      WHERE j.kind = 'payout_transfer' AND j.source_ref = i.payout_id)
), posted AS (
    INSERT INTO closeout_data.journals (journal_id, kind, source_ref, currency, invoice_id, occurred_at,
                                        ledger_run_id, description)
    SELECT closeout_data.journal_id('payout_transfer', s.payout_id), 'payout_transfer', s.payout_id, s.currency,
           s.invoice_id, s.occurred_at, %(run)s,
           'Payout ' || s.payout_id || ' to ' || s.payee_key || ' paid by Stripe transfer ' || s.external_id
    FROM src s
    ON CONFLICT DO NOTHING
    RETURNING journal_id, source_ref, currency
)
INSERT INTO closeout_data.journal_lines (journal_id, line_no, currency, role, account_code, debit_minor, credit_minor)
SELECT p.journal_id, l.line_no, p.currency, l.role, l.account_code, l.debit_minor, l.credit_minor
FROM posted p
JOIN src s ON s.payout_id = p.source_ref
CROSS JOIN LATERAL (VALUES
    (1, 'payouts_payable', %(payouts_payable)s, s.amount_minor, 0::bigint),
    (2, 'cash_clearing', %(cash_clearing)s, 0::bigint, s.amount_minor)
) AS l (line_no, role, account_code, debit_minor, credit_minor);
