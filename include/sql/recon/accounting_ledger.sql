-- Journals -> the accounting system's own export (QuickBooks General Ledger report ingested into
-- closeout.accounting_ledger), per account and currency: the sum of its transaction rows dated by the external
-- cut-off against our lines (debit minus credit) posted by the ledger cut-off, in the currencies the ingested
-- reports cover. Their account is matched to ours by code, name, or "code name"; an unmatched account is kept
-- as it is (so it differs). Signed: theirs minus ours.
--
-- A General Ledger report of a range (and currency) ingested again, downloaded after the books moved, supersedes
-- the earlier one of the same range: only the latest ingest of each counts, or every re-download would add up.
--
-- Dates: a file export dates our lines by posting time, so ours are compared by it; a read-back through the API
-- holds each line on the date the push gave it (the journal's event date in UTC), so ours are dated that way there.
--
-- Per accounting system: with QuickBooks and Xero both connected, each system's latest reports are compared with our
-- lines on their own (one system's later read-back never hides the other's difference); the item then names the
-- system, and with one system it is the account, as before.
--
-- Journals that do not balance are left out on both sides (ours by journal id, theirs by the report's Num, which
-- is the JournalNo closeout exported: the journal id, or "<journal id>-<currency>"): the `journals` check fails
-- on every one of them (a hard difference, zero tolerance), so a missing line is reported once, by the check
-- whose invariant it breaks, not again here as an account balance that moved. Nothing goes unreported: a journal
-- is only left out while `journals` fails on it.
WITH unbalanced AS (
    SELECT b.journal_id, upper(b.currency) AS currency FROM closeout.journal_balance b WHERE NOT b.balanced
), latest AS (
    SELECT DISTINCT ON (i.system, upper(i.currency), coalesce(i.report_range, i.ingest_id::text)) i.ingest_id
    FROM closeout.accounting_ingests i
    WHERE i.kind = 'general_ledger'
    ORDER BY i.system, upper(i.currency), coalesce(i.report_range, i.ingest_id::text), i.ingest_id DESC
), covered AS (
    -- the currencies each system's reports cover, and whether the latest came through its API (read back) or a file
    SELECT DISTINCT ON (i.system, upper(i.currency)) i.system, upper(i.currency) AS currency, i.source <> 'file' AS api
    FROM closeout.accounting_ingests i
    WHERE i.kind = 'general_ledger'
    ORDER BY i.system, upper(i.currency), i.ingest_id DESC
), named AS (
    SELECT count(DISTINCT c.system) > 1 AS by_system FROM covered c
), theirs AS (
    SELECT a.system, coalesce(la.code, a.account) AS account, upper(a.currency) AS currency, sum(a.amount_minor) AS amount_minor
    FROM closeout.accounting_ledger a
    LEFT JOIN closeout.ledger_accounts la
           ON a.account IN (la.code, la.name, la.code || ' ' || la.name)
    WHERE a.ingest_id IN (SELECT ingest_id FROM latest) AND a.txn_date <= {external_cutoff}::date
      AND ({period_start}::date IS NULL OR (a.txn_date >= {period_start}::date AND a.txn_date < {period_end}::date))
      AND NOT EXISTS (SELECT 1 FROM unbalanced u
                      WHERE a.num IN (u.journal_id, u.journal_id || '-' || u.currency))
    GROUP BY 1, 2, 3
), ours AS (
    SELECT c.system, l.account, upper(l.currency) AS currency, sum(l.debit_minor - l.credit_minor) AS amount_minor
    FROM closeout.ledger_lines l
    JOIN covered c ON c.currency = upper(l.currency)
    CROSS JOIN LATERAL (SELECT (l.occurred_at AT TIME ZONE 'UTC')::date AS booked_on) d
    WHERE l.posted_at <= {ledger_cutoff}
      -- read back through the API: the books hold each line on the date the push gave it (the event's UTC date: a
      -- payout on its arrival day), so ours are dated the same way; the file export dates lines by posting time
      AND (NOT c.api OR d.booked_on <= {external_cutoff}::date)
      AND ({period_start}::date IS NULL
           OR (c.api AND d.booked_on >= {period_start}::date AND d.booked_on < {period_end}::date)
           OR (NOT c.api AND l.posted_at >= {period_start}::date AND l.posted_at < {period_end}::date))
      AND NOT EXISTS (SELECT 1 FROM unbalanced u WHERE u.journal_id = l.journal_id::text)
    GROUP BY 1, 2, 3
)
SELECT 'account_balance' AS kind, coalesce(o.currency, t.currency) AS currency,
       CASE WHEN n.by_system THEN coalesce(o.system, t.system) || ' ' ELSE '' END
           || coalesce(o.account, t.account) AS item,
       coalesce(t.amount_minor, 0) - coalesce(o.amount_minor, 0) AS difference_minor, false AS hard
FROM ours o
FULL JOIN theirs t ON t.system = o.system AND t.account = o.account AND t.currency = o.currency
CROSS JOIN named n
WHERE coalesce(t.amount_minor, 0) <> coalesce(o.amount_minor, 0)
