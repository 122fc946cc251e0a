-- Invariants 4-5 through the ledger's own views: every journal balances (debits = credits per journal and
-- currency, at least two lines); receivable per client and currency equals its open invoices' unpaid remainder.
SELECT 'unbalanced_journal' AS kind, b.currency, b.journal_id::text AS item,
       b.debit_minor - b.credit_minor AS difference_minor, true AS hard
FROM closeout.journal_balance b WHERE NOT b.balanced
UNION ALL
SELECT 'receivable_vs_open_invoices', r.currency, r.client_key, r.difference_minor, true
FROM closeout.receivable_by_client r WHERE NOT r.holds
