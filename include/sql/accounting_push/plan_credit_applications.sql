-- QuickBooks only: credit memos closeout pushed (credit_note links) not yet applied to their invoice there. A
-- CreditMemo is created unapplied; Intuit applies a credit through a ReceivePayment whose lines link the invoice and
-- the credit memo with the same amount (TotalAmt 0: no money moves, nothing is posted). One such payment per credit
-- note, linked as object_kind payment with ref 'credit_note:<credit_note_id>' (its total there is 0). Xero allocates
-- a credit note in the credit note itself (Allocations): nothing here for it.
SELECT 'credit_note:' || c.credit_note_id AS ref, j.client_key, j.currency, 0::bigint AS total_minor,
       (SELECT sum(l.debit_minor) FROM closeout_data.journal_lines l WHERE l.journal_id = j.journal_id) AS amount_minor,
       (j.occurred_at AT TIME ZONE 'UTC')::date AS txn_date, cur.exponent, c.credit_note_id, c.invoice_id,
       il.external_id AS invoice_external_id, nl.external_id AS credit_memo_external_id, cl.external_id AS customer_id,
       NULL::text AS review_id,
       (SELECT bt.exchange_rate FROM closeout_data.stripe_balance_transactions bt
         WHERE upper(bt.presentment_currency) = j.currency AND upper(bt.currency) = %(home)s
           AND bt.exchange_rate IS NOT NULL
           AND (bt.invoice_id = c.invoice_id OR bt.created_at <= j.occurred_at)
         ORDER BY bt.invoice_id = c.invoice_id DESC, bt.created_at DESC LIMIT 1) AS ledger_rate,
       coalesce(x.attempts, 0) AS attempts
FROM closeout_data.accounting_links nl
JOIN closeout_data.credit_notes c ON c.credit_note_id = nl.closeout_ref
JOIN closeout_data.journals j ON j.kind = 'credit_note' AND j.source_ref = c.credit_note_id
JOIN closeout_data.currencies cur ON cur.code = j.currency
JOIN closeout_data.accounting_links il
  ON il.system = nl.system AND il.company_id = nl.company_id AND il.object_kind = 'invoice'
 AND il.closeout_ref = c.invoice_id
LEFT JOIN closeout_data.accounting_links cl
       ON cl.system = nl.system AND cl.company_id = nl.company_id AND cl.object_kind = 'customer'
      AND cl.closeout_ref = j.client_key
LEFT JOIN closeout_data.accounting_push_exceptions x
       ON x.system = nl.system AND x.company_id = nl.company_id AND x.object_kind = 'payment'
      AND x.closeout_ref = 'credit_note:' || c.credit_note_id
WHERE %(system)s = 'quickbooks'
  AND nl.system = %(system)s AND nl.company_id = %(company_id)s AND nl.object_kind = 'credit_note'
  AND NOT EXISTS (SELECT 1 FROM closeout_data.accounting_links k
                  WHERE k.system = %(system)s AND k.company_id = %(company_id)s AND k.object_kind = 'payment'
                    AND k.closeout_ref = 'credit_note:' || c.credit_note_id)
  AND NOT EXISTS (SELECT 1 FROM closeout_data.accounting_push_batches b
                  WHERE b.system = %(system)s AND b.company_id = %(company_id)s AND b.state = 'pending'
                    AND b.object_kind = 'payment'
                    AND b.items @> jsonb_build_array(jsonb_build_object('ref', 'credit_note:' || c.credit_note_id)))
ORDER BY txn_date, c.credit_note_id
