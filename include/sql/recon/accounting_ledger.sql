-- Journals -> the accounting system's own export (QuickBooks General Ledger report ingested into
-- closeout.accounting_ledger), per account and currency: the sum of its transaction rows dated by the external
-- cut-off against our lines (debit minus credit) posted by the ledger cut-off, in the currencies the ingested
-- reports cover. Their account is matched to ours by code, name, or "code name"; an unmatched account is kept
-- as it is (so it differs). Signed: theirs minus ours.
WITH theirs AS (
    SELECT coalesce(la.code, a.account) AS account, upper(a.currency) AS currency, sum(a.amount_minor) AS amount_minor
    FROM closeout.accounting_ledger a
    LEFT JOIN closeout.ledger_accounts la
           ON a.account IN (la.code, la.name, la.code || ' ' || la.name)
    WHERE a.txn_date <= {external_cutoff}::date
      AND ({period_start}::date IS NULL OR (a.txn_date >= {period_start}::date AND a.txn_date < {period_end}::date))
    GROUP BY 1, 2
), ours AS (
    SELECT l.account, upper(l.currency) AS currency, sum(l.debit_minor - l.credit_minor) AS amount_minor
    FROM closeout.ledger_lines l
    WHERE l.posted_at <= {ledger_cutoff}
      AND upper(l.currency) IN (SELECT upper(currency) FROM closeout.accounting_ingests WHERE kind = 'general_ledger')
      AND ({period_start}::date IS NULL OR (l.posted_at >= {period_start}::date AND l.posted_at < {period_end}::date))
    GROUP BY 1, 2
)
SELECT 'account_balance' AS kind, coalesce(o.currency, t.currency) AS currency,
       coalesce(o.account, t.account) AS item,
       coalesce(t.amount_minor, 0) - coalesce(o.amount_minor, 0) AS difference_minor, false AS hard
FROM ours o
FULL JOIN theirs t ON t.account = o.account AND t.currency = o.currency
WHERE coalesce(t.amount_minor, 0) <> coalesce(o.amount_minor, 0)
