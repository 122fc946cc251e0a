-- Invariant 7, the balance (stripe_balance): per settlement currency, the ledger's Stripe balance (role
-- cash_clearing) against Stripe's balance built from its own balance transactions (the sum of net), at the
-- cut-off: the external cut-off capped at where Stripe's balance transaction list was last completely read
-- (closeout_data.stripe_listed_until), the ledger's lines posted by the ledger cut-off for movements up to that
-- same moment. With a period, at the end of the period (the closing balance the close report shows). One row per
-- currency that differs (kind 'balance', item: the currency). Signed: Stripe minus the ledger.
--
-- One cause, one check. Both balances are the sum of three parts, and each part has its own check, item by item:
--   fees      the fee of every transaction and the fee-only ones (stripe_fee, stripe_fx_fee, tax_fee) | the
--             ledger's 'fee' journals                                                       -> stripe_fees
--   payouts   the payout, payout_failure and payout_cancel transactions | 'stripe_payout' and
--             'stripe_payout_failure' journals                                              -> stripe_payouts
--   the rest  charges, refunds, disputes and reinstatements, transfers to connected accounts, adjustments,
--             at their gross amount | every other journal on cash_clearing (payments, refunds, disputes,
--             currency conversions, contractor transfers ...)                               -> here
-- So a fee or a payout left unbooked fails its own check and not this one, and the three green together mean the
-- two balances are equal. Transactions of objects stripe_objects reports in this same run as unknown to closeout
-- (a Dashboard invoice's charge, an unknown refund or dispute) are left to it too: closeout could not book them
-- because it does not know them, which that check says item by item. Nothing goes unreported: a transaction is
-- left out only while stripe_objects fails on its object in the same run.
--
-- A contractor transfer's journal is dated by closeout's clock when the transfer was made; it is placed at its
-- Stripe transfer's balance transaction when that is listed, so both sides judge the same moment.
WITH listed AS (
    SELECT least({external_cutoff}::timestamptz, closeout_data.stripe_listed_until('balance_transactions')) AS until
), unknown AS (
    SELECT d.item FROM closeout_data.recon_differences d
    WHERE d.run_id = {run_id} AND d.check_name = 'stripe_objects'
      AND d.kind IN ('invoice_unknown', 'refund_unknown', 'dispute_unknown')
), stripe AS (
    SELECT t.currency, sum(t.amount_minor) AS amount_minor  -- the cash sync stores currencies upper case
    FROM closeout_data.stripe_balance_transactions t
    CROSS JOIN listed w
    WHERE t.created_at <= w.until
      AND ({period_end}::date IS NULL OR t.created_at < {period_end}::date)
      AND t.type NOT IN ('payout', 'payout_failure', 'payout_cancel', 'stripe_fee', 'stripe_fx_fee', 'tax_fee')
      AND (NOT EXISTS (SELECT FROM unknown)  -- answered once per run: the usual case pays nothing per row
           OR (NOT EXISTS (SELECT 1 FROM unknown u WHERE u.item = t.source_id)
               AND NOT EXISTS (SELECT 1 FROM closeout_data.stripe_charges c
                               JOIN unknown u ON u.item = c.stripe_invoice_id
                               WHERE c.charge_id = coalesce(t.charge_id,
                                                            CASE WHEN t.source_type = 'charge' THEN t.source_id END))))
    GROUP BY t.currency
), transfers AS (  -- contractor transfers, placed at their Stripe balance transaction when it is listed
    SELECT j.journal_id, min(t.created_at) AS stripe_at
    FROM closeout_data.journals j
    JOIN closeout_data.payout_items p ON p.payout_id = j.source_ref
    JOIN closeout_data.stripe_balance_transactions t ON t.source_id = p.external_id
    WHERE j.kind = 'payout_transfer'
    GROUP BY j.journal_id
), ledger AS (
    SELECT l.currency, sum(l.debit_minor - l.credit_minor) AS amount_minor  -- journal currencies are upper case
    FROM closeout_data.journal_lines l
    JOIN closeout_data.journals j ON j.journal_id = l.journal_id
    LEFT JOIN transfers x ON x.journal_id = j.journal_id
    CROSS JOIN listed w
    WHERE l.role = 'cash_clearing' AND j.posted_at <= {ledger_cutoff}
      AND j.kind NOT IN ('fee', 'stripe_payout', 'stripe_payout_failure')
      AND date_trunc('second', coalesce(x.stripe_at, j.occurred_at)) <= w.until
      AND ({period_end}::date IS NULL OR coalesce(x.stripe_at, j.occurred_at) < {period_end}::date)
    GROUP BY l.currency
)
SELECT 'balance' AS kind, coalesce(s.currency, l.currency) AS currency, coalesce(s.currency, l.currency) AS item,
       coalesce(s.amount_minor, 0) - coalesce(l.amount_minor, 0) AS difference_minor, false AS hard
FROM stripe s
FULL JOIN ledger l ON l.currency = s.currency
WHERE coalesce(s.amount_minor, 0) <> coalesce(l.amount_minor, 0)
