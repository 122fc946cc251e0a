-- Invariant 7, fees (stripe_fees): the fees booked equal the fees Stripe took, per settlement currency, shown
-- balance transaction by balance transaction. Stripe's fee of a transaction is its `fee` plus, for the fee-only
-- transactions Stripe posts later (stripe_fee, stripe_fx_fee, tax_fee: billing, Radar ...), the amount they take
-- from the balance; never a price list. The ledger books each as a 'fee' journal (source = the balance
-- transaction; roles processor_fees, dispute_fees), include/sql/ledger/85_fees.sql. One row per transaction whose
-- fee is not booked as Stripe took it, and per fee journal without its transaction. Signed: Stripe minus the ledger.
--   fee_not_booked          Stripe took a fee and no fee journal books it (posted by the ledger cut-off)
--   fee_amount              booked, for another amount
--   fee_currency            booked in another currency than the transaction's settlement currency
--   fee_without_transaction a fee journal for a transaction Stripe does not list
-- Scope as stripe_balance (whose fee part this is): the transactions created up to where Stripe's list was last
-- completely read (capped at the external cut-off) and, with a period, before its end: every fee to date, so a
-- fee left unbooked in an earlier month still fails a later close. Fee journals are dated by their transaction.
--
-- Speed (a million transactions at month end): first one pass over each side, no join: per currency the count,
-- the sum and a fingerprint (XOR of a hash of each fee's journal id and amount; a fee journal's id follows from its
-- transaction, closeout_data.journal_id('fee', txn)) of every fee Stripe ever took against every fee line ever
-- booked. When they agree and no posting ran past the ledger cut-off, every fee in any window is booked as taken,
-- and the itemised comparison below is skipped (its scans sit under a one-time filter); otherwise it runs and
-- names each difference.
WITH listed AS (
    SELECT least({external_cutoff}::timestamptz, closeout_data.stripe_listed_until('balance_transactions')) AS until
), all_taken AS (
    SELECT upper(t.currency) AS currency, count(*) AS n, sum(f.fee_minor) AS fee_minor,
           bit_xor(hashtextextended(closeout_data.journal_id('fee', t.balance_transaction_id) || ':' || f.fee_minor, 0))
               AS fingerprint
    FROM closeout_data.stripe_balance_transactions t
    CROSS JOIN LATERAL (SELECT t.fee_minor + CASE WHEN t.type IN ('stripe_fee', 'stripe_fx_fee', 'tax_fee')
                                                  THEN -t.amount_minor ELSE 0 END AS fee_minor) f
    WHERE f.fee_minor <> 0
    GROUP BY 1
), all_booked AS (
    SELECT upper(l.currency) AS currency, count(*) AS n, sum(l.debit_minor - l.credit_minor) AS fee_minor,
           bit_xor(hashtextextended(l.journal_id || ':' || (l.debit_minor - l.credit_minor), 0)) AS fingerprint
    FROM closeout_data.journal_lines l
    WHERE l.role IN ('processor_fees', 'dispute_fees')
    GROUP BY 1
), quick AS MATERIALIZED (
    SELECT NOT EXISTS (SELECT 1 FROM closeout_data.ledger_runs r
                       WHERE coalesce(r.finished_at, 'infinity') > {ledger_cutoff}::timestamptz)
           AND NOT EXISTS (SELECT 1 FROM all_taken t FULL JOIN all_booked b ON b.currency = t.currency
                           WHERE (t.n, t.fee_minor, t.fingerprint) IS DISTINCT FROM (b.n, b.fee_minor, b.fingerprint))
               AS all_booked_as_taken
), taken AS (
    SELECT t.balance_transaction_id, upper(t.currency) AS currency, coalesce(t.reporting_category, t.type) AS category,
           f.fee_minor
    FROM closeout_data.stripe_balance_transactions t
    CROSS JOIN LATERAL (SELECT t.fee_minor + CASE WHEN t.type IN ('stripe_fee', 'stripe_fx_fee', 'tax_fee')
                                                  THEN -t.amount_minor ELSE 0 END AS fee_minor) f
    CROSS JOIN listed w
    WHERE t.created_at <= w.until
      AND ({period_end}::date IS NULL OR t.created_at < {period_end}::date)
      AND f.fee_minor <> 0
      AND NOT (SELECT q.all_booked_as_taken FROM quick q)
), booked AS (
    SELECT j.source_ref AS balance_transaction_id, min(upper(l.currency)) AS currency,
           sum(l.debit_minor - l.credit_minor) AS fee_minor, min(j.occurred_at) AS occurred_at
    FROM closeout_data.journals j
    JOIN closeout_data.journal_lines l ON l.journal_id = j.journal_id
    WHERE j.kind = 'fee' AND l.role IN ('processor_fees', 'dispute_fees') AND j.posted_at <= {ledger_cutoff}
      AND NOT (SELECT q.all_booked_as_taken FROM quick q)
    GROUP BY j.source_ref
), differs AS MATERIALIZED (  -- normally empty
    SELECT t.balance_transaction_id AS taken_id, t.currency AS taken_currency, t.category, t.fee_minor AS taken_minor,
           b.balance_transaction_id AS booked_id, b.currency AS booked_currency, b.fee_minor AS booked_minor
    FROM taken t
    FULL JOIN booked b ON b.balance_transaction_id = t.balance_transaction_id
    CROSS JOIN listed w
    WHERE (t.balance_transaction_id IS NULL  -- a fee booked that Stripe did not take (dated by its transaction)
           AND date_trunc('second', b.occurred_at) <= w.until
           AND ({period_end}::date IS NULL OR b.occurred_at < {period_end}::date))
       OR (t.balance_transaction_id IS NOT NULL
           AND (b.balance_transaction_id IS NULL OR b.currency <> t.currency OR b.fee_minor <> t.fee_minor))
)
SELECT CASE WHEN d.booked_id IS NULL THEN 'fee_not_booked'
            WHEN d.taken_id IS NULL AND x.balance_transaction_id IS NULL THEN 'fee_without_transaction'
            WHEN d.taken_id IS NULL THEN 'fee_amount'  -- Stripe's transaction carries no fee
            WHEN d.booked_currency <> d.taken_currency THEN 'fee_currency'
            ELSE 'fee_amount' END AS kind,
       coalesce(d.taken_currency, d.booked_currency) AS currency,
       coalesce(d.taken_id, d.booked_id) || coalesce(' (' || coalesce(d.category, x.reporting_category, x.type) || ')', '')
           AS item,
       coalesce(d.taken_minor, 0) - coalesce(d.booked_minor, 0) AS difference_minor,
       (d.booked_id IS NULL OR x.balance_transaction_id IS NULL
        OR d.booked_currency IS DISTINCT FROM upper(x.currency)) AS hard
FROM differs d
LEFT JOIN closeout_data.stripe_balance_transactions x ON x.balance_transaction_id = coalesce(d.taken_id, d.booked_id)
