-- Credit notes that only lower what their invoice owes (closeout_data.accounting_document_journals, object_kind
-- credit_note) not yet in the accounting system %(system)s / %(company_id)s: each goes as the system's own credit
-- document applied to its invoice (QuickBooks CreditMemo, Xero ACCRECCREDIT credit note with an Allocation), ref the
-- Stripe credit note id, its lines the credit note journal's debits (credit_notes contra revenue, and the pass-through
-- expenses it takes back), with the invoice as the books know it (its link; NULL while it is not there yet), the
-- client's customer link (or the review holding it) and the rate the ledger used for the invoice's currency.
-- A taxed invoice's credit note also carries the invoice's tax configuration (its tax_payable debit becomes the
-- document's tax, not a line).
SELECT c.credit_note_id AS ref, j.client_key, j.currency,
       (SELECT sum(l.debit_minor) FROM closeout_data.journal_lines l WHERE l.journal_id = j.journal_id) AS total_minor,
       (j.occurred_at AT TIME ZONE 'UTC')::date AS txn_date, cur.exponent, j.journal_id, c.number AS doc_number,
       c.invoice_id, i.stripe_number AS invoice_number, il.external_id AS invoice_external_id,
       cl.external_id AS customer_id,
       (SELECT r.review_id FROM closeout_data.accounting_link_reviews r
         WHERE r.system = %(system)s AND r.company_id = %(company_id)s AND r.object_kind = 'customer'
           AND r.closeout_ref = j.client_key AND r.state <> 'done' LIMIT 1) AS review_id,
       (SELECT bt.exchange_rate FROM closeout_data.stripe_balance_transactions bt
         WHERE upper(bt.presentment_currency) = j.currency AND upper(bt.currency) = %(home)s
           AND bt.exchange_rate IS NOT NULL
           AND (bt.invoice_id = c.invoice_id OR bt.created_at <= j.occurred_at)
         ORDER BY bt.invoice_id = c.invoice_id DESC, bt.created_at DESC LIMIT 1) AS ledger_rate,
       coalesce(x.attempts, 0) AS attempts,
       -- the invoice's frozen tax configuration (0042): a credit note of a taxed invoice goes like its invoice, net
       -- lines under the client's code, its tax (the journal's tax_payable debit) as the document's own tax
       -- (push/invoice_tax.py credit_note_as_invoice); untaxed: taxed false, the journal's debits as they are
       (i.tax_rate_percent IS NOT NULL OR i.tax_exempt) AS taxed, i.tax_inclusive, i.tax_rate_percent,
       i.tax_quickbooks_code AS quickbooks_tax_code, i.tax_xero_type AS xero_tax_type,
       (SELECT jsonb_agg(jsonb_build_object('line_no', l.line_no, 'account', l.account_code, 'role', l.role,
                                            'amount_minor', l.debit_minor) ORDER BY l.line_no)
          FROM closeout_data.journal_lines l WHERE l.journal_id = j.journal_id AND l.debit_minor > 0) AS lines
FROM closeout_data.accounting_document_journals d
JOIN closeout_data.journals j ON j.journal_id = d.journal_id
JOIN closeout_data.credit_notes c ON c.credit_note_id = j.source_ref
JOIN closeout_data.invoices i ON i.invoice_id = c.invoice_id
JOIN closeout_data.currencies cur ON cur.code = j.currency
LEFT JOIN closeout_data.accounting_links il
       ON il.system = %(system)s AND il.company_id = %(company_id)s AND il.object_kind = 'invoice'
      AND il.closeout_ref = c.invoice_id
LEFT JOIN closeout_data.accounting_links cl
       ON cl.system = %(system)s AND cl.company_id = %(company_id)s AND cl.object_kind = 'customer'
      AND cl.closeout_ref = j.client_key
LEFT JOIN closeout_data.accounting_push_exceptions x
       ON x.system = %(system)s AND x.company_id = %(company_id)s AND x.object_kind = 'credit_note'
      AND x.closeout_ref = c.credit_note_id
WHERE d.object_kind = 'credit_note'
  -- pushed as a journal before documents existed: it is there already (never booked twice)
  AND NOT EXISTS (SELECT 1 FROM closeout_data.accounting_links k
                  WHERE k.system = %(system)s AND k.company_id = %(company_id)s AND k.object_kind = 'journal'
                    AND k.closeout_ref = j.journal_id)
  AND NOT EXISTS (SELECT 1 FROM closeout_data.accounting_links k
                  WHERE k.system = %(system)s AND k.company_id = %(company_id)s AND k.object_kind = 'credit_note'
                    AND k.closeout_ref = c.credit_note_id)
  AND NOT EXISTS (SELECT 1 FROM closeout_data.accounting_push_batches b
                  WHERE b.system = %(system)s AND b.company_id = %(company_id)s AND b.state = 'pending'
                    AND b.object_kind = 'credit_note'
                    AND b.items @> jsonb_build_array(jsonb_build_object('ref', c.credit_note_id)))
ORDER BY txn_date, c.credit_note_id
