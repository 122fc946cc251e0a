-- Stripe payouts to the bank (closeout_data.accounting_document_journals, object_kind deposit) not yet in the
-- accounting system %(system)s / %(company_id)s: each of a payout's two ledger journals (taken from the Stripe
-- balance into transit, then arrived at the bank) goes as a QuickBooks Deposit / Xero BankTransfer from the account
-- the journal credits to the account it debits, ref the journal id, with the rate the ledger used for a settlement
-- currency other than the home one.
SELECT j.journal_id AS ref, NULL::text AS client_key, j.currency, j.kind, j.source_ref AS payout_id, j.description,
       t.debit_minor AS total_minor, (j.occurred_at AT TIME ZONE 'UTC')::date AS txn_date, cur.exponent,
       t.to_role, t.to_account, f.from_role, f.from_account,
       (SELECT bt.exchange_rate FROM closeout_data.stripe_balance_transactions bt
         WHERE upper(bt.presentment_currency) = j.currency AND upper(bt.currency) = %(home)s
           AND bt.exchange_rate IS NOT NULL AND bt.created_at <= j.occurred_at
         ORDER BY bt.created_at DESC LIMIT 1) AS ledger_rate,
       coalesce(x.attempts, 0) AS attempts
FROM closeout_data.accounting_document_journals d
JOIN closeout_data.journals j ON j.journal_id = d.journal_id
JOIN closeout_data.currencies cur ON cur.code = j.currency
JOIN LATERAL (SELECT l.role AS to_role, l.account_code AS to_account, l.debit_minor
                FROM closeout_data.journal_lines l WHERE l.journal_id = j.journal_id AND l.debit_minor > 0) t ON true
JOIN LATERAL (SELECT l.role AS from_role, l.account_code AS from_account
                FROM closeout_data.journal_lines l WHERE l.journal_id = j.journal_id AND l.credit_minor > 0) f ON true
LEFT JOIN closeout_data.accounting_push_exceptions x
       ON x.system = %(system)s AND x.company_id = %(company_id)s AND x.object_kind = 'deposit'
      AND x.closeout_ref = j.journal_id
WHERE d.object_kind = 'deposit'
  -- pushed as a journal before documents existed: it is there already (never booked twice)
  AND NOT EXISTS (SELECT 1 FROM closeout_data.accounting_links k
                  WHERE k.system = %(system)s AND k.company_id = %(company_id)s AND k.object_kind = 'journal'
                    AND k.closeout_ref = j.journal_id)
  AND NOT EXISTS (SELECT 1 FROM closeout_data.accounting_links k
                  WHERE k.system = %(system)s AND k.company_id = %(company_id)s AND k.object_kind = 'deposit'
                    AND k.closeout_ref = j.journal_id)
  AND NOT EXISTS (SELECT 1 FROM closeout_data.accounting_push_batches b
                  WHERE b.system = %(system)s AND b.company_id = %(company_id)s AND b.state = 'pending'
                    AND b.object_kind = 'deposit'
                    AND b.items @> jsonb_build_array(jsonb_build_object('ref', j.journal_id)))
ORDER BY txn_date, j.journal_id
