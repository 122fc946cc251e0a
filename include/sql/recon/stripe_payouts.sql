-- Invariant 7, payouts (stripe_payouts): every Stripe payout equals the balance transactions it carried and is
-- booked to the bank exactly once. The ledger books a payout in two steps (include/sql/ledger/90-92_*.sql):
-- 'stripe_payout' when Stripe takes it from the balance (cash_clearing -> bank_clearing), 'stripe_payout_paid' when
-- it reaches the bank (bank_clearing -> cash), and 'stripe_payout_failure' when a failed or canceled payout comes
-- back. One row per difference, the item is the payout id. Signed: what Stripe paid out (or took from the balance)
-- minus what the ledger booked.
--   payout_vs_transactions      an automatic payout whose carried transactions (GET /v1/balance_transactions?payout=,
--                               their net, its own payout and failure transactions left out) do not add up to it;
--                               judged once Stripe finished reconciling it and closeout listed them
--   payout_transaction          its own balance transaction does not take its amount from the balance
--   payout_not_booked           no 'stripe_payout' journal: the ledger's Stripe balance still holds it
--   payout_booked_amount        booked out of the Stripe balance for another amount
--   payout_not_in_bank          paid, never booked to the bank (with payout_not_booked too when nothing is booked)
--   payout_bank_amount          booked to the bank for another amount (twice, for one)
--   payout_failure_not_booked   failed or canceled (its returning transaction listed), still booked as paid out
--   journal_without_payout      a payout journal for a payout Stripe does not list
-- Scope: payouts created up to where both Stripe's payout and balance transaction lists were last completely read
-- (capped at the external cut-off; a payout's own transaction is created with it, and the ledger books it once
-- that transaction is recorded) and, with a period, before its end: every payout to date, so one left unbooked in
-- an earlier month still fails a later close. Journals posted by the ledger cut-off.
WITH listed AS (
    SELECT least({external_cutoff}::timestamptz, closeout_data.stripe_listed_until('payouts'),
                 closeout_data.stripe_listed_until('balance_transactions')) AS until
), payouts AS (
    SELECT p.payout_id, upper(p.currency) AS currency, p.amount_minor, p.status, p.automatic, p.reconciliation_status,
           p.txns_linked_at, p.balance_transaction_id, p.failure_balance_transaction_id, w.until
    FROM closeout_data.stripe_payouts p
    CROSS JOIN listed w
    WHERE p.created_at <= w.until
      AND ({period_end}::date IS NULL OR p.created_at < {period_end}::date)
), booked AS (
    SELECT j.source_ref AS payout_id, min(upper(j.currency)) AS currency, min(j.occurred_at) AS occurred_at,
           bool_or(j.kind = 'stripe_payout') AS in_transit,
           bool_or(j.kind = 'stripe_payout_paid') AS arrived,
           bool_or(j.kind = 'stripe_payout_failure') AS returned,
           coalesce(sum(l.credit_minor - l.debit_minor) FILTER (WHERE j.kind = 'stripe_payout'
                                                                AND l.role = 'cash_clearing'), 0) AS out_of_balance,
           coalesce(sum(l.debit_minor - l.credit_minor) FILTER (WHERE l.role = 'cash'), 0) AS to_bank
    FROM closeout_data.journals j
    JOIN closeout_data.journal_lines l ON l.journal_id = j.journal_id
    WHERE j.kind IN ('stripe_payout', 'stripe_payout_paid', 'stripe_payout_failure')
      AND j.posted_at <= {ledger_cutoff}
    GROUP BY j.source_ref
), carried AS (
    SELECT t.payout_id, sum(t.net_minor) AS net_minor, count(*) AS transactions
    FROM closeout_data.stripe_balance_transactions t
    JOIN payouts p ON p.payout_id = t.payout_id
    WHERE t.balance_transaction_id IS DISTINCT FROM p.balance_transaction_id
      AND t.balance_transaction_id IS DISTINCT FROM p.failure_balance_transaction_id
      AND t.source_id IS DISTINCT FROM p.payout_id
    GROUP BY t.payout_id
)
SELECT 'payout_vs_transactions' AS kind, p.currency, p.payout_id AS item,
       coalesce(c.net_minor, 0) - p.amount_minor AS difference_minor, false AS hard
FROM payouts p
LEFT JOIN carried c ON c.payout_id = p.payout_id
WHERE p.automatic AND p.txns_linked_at IS NOT NULL AND p.status NOT IN ('failed', 'canceled')
  AND (p.reconciliation_status = 'completed' OR p.reconciliation_status IS NULL)
  AND coalesce(c.net_minor, 0) <> p.amount_minor
UNION ALL
SELECT 'payout_transaction', p.currency, p.payout_id, -t.net_minor - p.amount_minor, false
FROM payouts p
JOIN closeout_data.stripe_balance_transactions t ON t.balance_transaction_id = p.balance_transaction_id
WHERE -t.amount_minor <> p.amount_minor
UNION ALL
SELECT x.kind, p.currency, p.payout_id, x.difference_minor, x.hard
FROM payouts p
LEFT JOIN booked b ON b.payout_id = p.payout_id
CROSS JOIN LATERAL (VALUES
    ('payout_not_booked', b.in_transit IS NOT TRUE, p.amount_minor, true),
    ('payout_booked_amount', b.in_transit AND b.out_of_balance <> p.amount_minor, p.amount_minor - b.out_of_balance,
        false),
    ('payout_not_in_bank', p.status = 'paid' AND b.arrived IS NOT TRUE AND b.returned IS NOT TRUE,
        p.amount_minor, true),
    ('payout_bank_amount', p.status = 'paid' AND b.arrived AND b.to_bank <> p.amount_minor,
        p.amount_minor - b.to_bank, false),
    ('payout_failure_not_booked',
        p.status IN ('failed', 'canceled') AND b.in_transit AND b.returned IS NOT TRUE
        AND EXISTS (SELECT 1 FROM closeout_data.stripe_balance_transactions r
                    WHERE (r.balance_transaction_id = p.failure_balance_transaction_id
                           OR (r.source_id = p.payout_id AND r.type IN ('payout_failure', 'payout_cancel')))
                      AND r.created_at <= p.until),
        -p.amount_minor, true)
) AS x (kind, differs, difference_minor, hard)
WHERE x.differs
UNION ALL
SELECT 'journal_without_payout', b.currency, b.payout_id, -greatest(b.out_of_balance, b.to_bank), true
FROM booked b
CROSS JOIN listed w
WHERE date_trunc('second', b.occurred_at) <= w.until
  AND ({period_end}::date IS NULL OR b.occurred_at < {period_end}::date)
  AND NOT EXISTS (SELECT 1 FROM closeout_data.stripe_payouts p WHERE p.payout_id = b.payout_id)
