-- Stripe payouts, step 2: a payout Stripe reports 'paid' has reached the bank. Debit cash (the bank), credit
-- bank_clearing (kind 'stripe_payout_paid', source = payout_id), once, after its in-transit journal. This is
-- the one journal that books a Stripe payout to the bank (invariant 7); the bank statement shows the same
-- amount on the arrival date.
WITH src AS (
    SELECT p.payout_id, o.currency, o.journal_id AS in_transit, o.debit_minor AS amount_minor,
           coalesce(p.arrival_date::timestamp AT TIME ZONE 'UTC', p.updated_at, clock_timestamp()) AS occurred_at
    FROM closeout_data.stripe_payouts p
    JOIN LATERAL (
        SELECT j.journal_id, j.currency, sum(l.debit_minor) AS debit_minor
        FROM closeout_data.journals j
        JOIN closeout_data.journal_lines l ON l.journal_id = j.journal_id AND l.role = 'bank_clearing'
        WHERE j.kind = 'stripe_payout' AND j.source_ref = p.payout_id
        GROUP BY j.journal_id, j.currency
    ) o ON true
    WHERE p.status = 'paid'
      AND NOT EXISTS (SELECT 1 FROM closeout_data.journals j
                      WHERE j.kind IN ('stripe_payout_paid', 'stripe_payout_failure') AND j.source_ref = p.payout_id)
), posted AS (
    INSERT INTO closeout_data.journals (journal_id, kind, source_ref, currency, occurred_at, ledger_run_id,
                                        description)
    SELECT closeout_data.journal_id('stripe_payout_paid', s.payout_id), 'stripe_payout_paid', s.payout_id,
           s.currency, s.occurred_at, %(run)s, 'Stripe payout ' || s.payout_id || ' arrived at the bank'
    FROM src s
    ON CONFLICT DO NOTHING
    RETURNING journal_id, source_ref, currency
)
INSERT INTO closeout_data.journal_lines (journal_id, line_no, currency, role, account_code, debit_minor, credit_minor)
SELECT p.journal_id, l.line_no, p.currency, l.role, l.account_code, l.debit_minor, l.credit_minor
FROM posted p
JOIN src s ON s.payout_id = p.source_ref
CROSS JOIN LATERAL (VALUES
    (1, 'cash', %(cash)s, s.amount_minor, 0::bigint),
    (2, 'bank_clearing', %(bank_clearing)s, 0::bigint, s.amount_minor)
) AS l (line_no, role, account_code, debit_minor, credit_minor);
