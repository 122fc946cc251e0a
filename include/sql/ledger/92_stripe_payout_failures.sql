-- Stripe payouts, step 3: a payout that failed (or a pending one canceled) returns its money to the Stripe
-- balance with a second balance transaction (the payout's failure_balance_transaction, or one of type
-- payout_failure / payout_cancel whose source is the payout). Once that transaction is recorded: debit
-- cash_clearing, credit where the money was booked (bank_clearing while in transit; cash if the payout had
-- been reported paid, since a payout can fail after arriving), kind 'stripe_payout_failure', source =
-- payout_id, linked to the in-transit journal it undoes (reverses_journal_id).
WITH src AS (
    SELECT p.payout_id, o.journal_id AS original, o.currency, o.amount_minor, r.created_at AS occurred_at,
           EXISTS (SELECT 1 FROM closeout_data.journals a
                   WHERE a.kind = 'stripe_payout_paid' AND a.source_ref = p.payout_id) AS arrived,
           p.status
    FROM closeout_data.stripe_payouts p
    JOIN LATERAL (
        SELECT j.journal_id, j.currency, sum(l.debit_minor) AS amount_minor
        FROM closeout_data.journals j
        JOIN closeout_data.journal_lines l ON l.journal_id = j.journal_id AND l.role = 'bank_clearing'
        WHERE j.kind = 'stripe_payout' AND j.source_ref = p.payout_id
        GROUP BY j.journal_id, j.currency
    ) o ON true
    CROSS JOIN LATERAL (
        SELECT min(t.created_at) AS created_at
        FROM closeout_data.stripe_balance_transactions t
        WHERE t.balance_transaction_id = p.failure_balance_transaction_id
           OR (t.source_id = p.payout_id AND t.type IN ('payout_failure', 'payout_cancel'))
    ) r
    WHERE p.status IN ('failed', 'canceled') AND r.created_at IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM closeout_data.journals x WHERE x.reverses_journal_id = o.journal_id)
), posted AS (
    INSERT INTO closeout_data.journals (journal_id, kind, source_ref, currency, occurred_at, reverses_journal_id,
                                        ledger_run_id, description)
    SELECT closeout_data.journal_id('stripe_payout_failure', s.payout_id), 'stripe_payout_failure', s.payout_id,
           s.currency, s.occurred_at, s.original, %(run)s,
           'Stripe payout ' || s.payout_id || ' ' || s.status || ': the money is back in the Stripe balance'
    FROM src s
    ON CONFLICT DO NOTHING
    RETURNING journal_id, source_ref, currency
)
INSERT INTO closeout_data.journal_lines (journal_id, line_no, currency, role, account_code, debit_minor, credit_minor)
SELECT p.journal_id, l.line_no, p.currency, l.role, l.account_code, l.debit_minor, l.credit_minor
FROM posted p
JOIN src s ON s.payout_id = p.source_ref
CROSS JOIN LATERAL (VALUES
    (1, 'cash_clearing', %(cash_clearing)s, s.amount_minor, 0::bigint),
    (2, CASE WHEN s.arrived THEN 'cash' ELSE 'bank_clearing' END,
        CASE WHEN s.arrived THEN %(cash)s ELSE %(bank_clearing)s END, 0::bigint, s.amount_minor)
) AS l (line_no, role, account_code, debit_minor, credit_minor);
