-- Close report, cash: per settlement currency, the month in Stripe's balance from Stripe's own balance transactions
-- (closeout.stripe_balance_transactions, read from Stripe's list), and the ledger's Stripe balance at the same
-- moment. Parameters: period_start, period_end (the month's first and last day).
--
-- The month is cut where the checks cut it: at the end of the month, or earlier where Stripe's list of balance
-- transactions was last completely read (closeout.stripe_listed), so a report of the running month compares the
-- same moment on both sides. Every figure is a separate sum; the report computes the tie-outs:
--   gross collected - fees - refunds - disputes + other = net movements
--   opening + net movements - paid out = closing          (closing summed on its own, from every transaction)
--   ledger Stripe balance (cash_clearing) at the cut = closing
-- gross: charges (reporting category charge); fees: each transaction's fee plus the fee-only transactions;
-- refunds: refunds less failed refunds' returns; disputes: withdrawals less reinstatements; other: the rest
-- (transfers to connected accounts, adjustments ...); paid out: what payouts took to the bank, less failed ones
-- returned. Refunds, disputes, fees and paid out are shown as the money that left the balance (positive).
WITH cut AS (
    SELECT least((%(period_end)s::date + 1)::timestamptz,
                 closeout_data.stripe_listed_until('balance_transactions') + interval '1 second') AS until,
           %(period_start)s::date::timestamptz AS since,
           closeout_data.stripe_listed_until('balance_transactions') AS listed_until
), txns AS (
    SELECT upper(t.currency) AS currency, t.created_at >= c.since AS in_month,
           t.type IN ('payout', 'payout_failure', 'payout_cancel') AS payout,
           t.type IN ('stripe_fee', 'stripe_fx_fee', 'tax_fee') AS fee_only,
           coalesce(t.reporting_category, t.type) AS category, t.amount_minor, t.fee_minor, t.net_minor
    FROM closeout.stripe_balance_transactions t
    CROSS JOIN cut c
    WHERE t.created_at < c.until
), stripe AS (
    SELECT currency,
           coalesce(sum(net_minor) FILTER (WHERE NOT in_month), 0) AS opening_minor,
           coalesce(sum(amount_minor) FILTER (WHERE in_month AND NOT payout AND NOT fee_only AND category = 'charge'), 0)
               AS gross_minor,
           coalesce(sum(fee_minor + CASE WHEN fee_only THEN -amount_minor ELSE 0 END) FILTER (WHERE in_month), 0)
               AS fees_minor,
           coalesce(-sum(amount_minor) FILTER (WHERE in_month AND NOT payout AND NOT fee_only
                                               AND category IN ('refund', 'refund_failure')), 0) AS refunds_minor,
           coalesce(-sum(amount_minor) FILTER (WHERE in_month AND NOT payout AND NOT fee_only
                                               AND category IN ('dispute', 'dispute_reversal')), 0) AS disputes_minor,
           coalesce(sum(amount_minor) FILTER (WHERE in_month AND NOT payout AND NOT fee_only
                                              AND category NOT IN ('charge', 'refund', 'refund_failure', 'dispute',
                                                                   'dispute_reversal')), 0) AS other_minor,
           coalesce(sum(net_minor) FILTER (WHERE in_month AND NOT payout), 0) AS net_minor,
           coalesce(-sum(net_minor) FILTER (WHERE in_month AND payout), 0) AS paid_out_minor,
           coalesce(sum(net_minor), 0) AS closing_minor,
           count(*) FILTER (WHERE in_month) AS transactions
    FROM txns
    GROUP BY currency
), transfers AS (  -- contractor transfers, placed at their Stripe balance transaction when it is listed
    SELECT j.journal_id, min(t.created_at) AS stripe_at
    FROM closeout_data.journals j
    JOIN closeout_data.payout_items p ON p.payout_id = j.source_ref
    JOIN closeout.stripe_balance_transactions t ON t.source_id = p.external_id
    WHERE j.kind = 'payout_transfer'
    GROUP BY j.journal_id
), ledger AS (
    SELECT upper(l.currency) AS currency, sum(l.debit_minor - l.credit_minor) AS ledger_closing_minor
    FROM closeout.ledger_lines l
    LEFT JOIN transfers x ON x.journal_id = l.journal_id
    CROSS JOIN cut c
    WHERE l.role = 'cash_clearing' AND date_trunc('second', coalesce(x.stripe_at, l.occurred_at)) < c.until
    GROUP BY 1
), payouts AS (
    SELECT upper(p.currency) AS currency, count(*) AS payouts,
           count(*) FILTER (WHERE p.status IN ('pending', 'in_transit')) AS in_transit
    FROM closeout.stripe_payouts p
    CROSS JOIN cut c
    WHERE p.created_at >= c.since AND p.created_at < c.until
    GROUP BY 1
)
SELECT coalesce(s.currency, l.currency) AS currency, cur.exponent,
       coalesce(s.opening_minor, 0) AS opening_minor, coalesce(s.gross_minor, 0) AS gross_minor,
       coalesce(s.fees_minor, 0) AS fees_minor, coalesce(s.refunds_minor, 0) AS refunds_minor,
       coalesce(s.disputes_minor, 0) AS disputes_minor, coalesce(s.other_minor, 0) AS other_minor,
       coalesce(s.net_minor, 0) AS net_minor, coalesce(s.paid_out_minor, 0) AS paid_out_minor,
       coalesce(s.closing_minor, 0) AS closing_minor, coalesce(l.ledger_closing_minor, 0) AS ledger_closing_minor,
       coalesce(s.transactions, 0) AS transactions, coalesce(p.payouts, 0) AS payouts,
       coalesce(p.in_transit, 0) AS payouts_in_transit,
       c.until - interval '1 second' AS as_of, c.listed_until
FROM stripe s
FULL JOIN ledger l ON l.currency = s.currency
LEFT JOIN payouts p ON p.currency = coalesce(s.currency, l.currency)
CROSS JOIN cut c
JOIN closeout_data.currencies cur ON cur.code = coalesce(s.currency, l.currency)
WHERE s.currency IS NOT NULL OR l.ledger_closing_minor <> 0
ORDER BY 1;
