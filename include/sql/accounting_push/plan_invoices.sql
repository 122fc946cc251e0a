-- Invoices booked (published in Stripe: open, paid or uncollectible, with their Stripe number) and not yet in the
-- accounting system %(system)s / %(company_id)s, with their lines, the client's customer link (or the review that
-- holds it), the rate the ledger used for a foreign currency, and how often the invoice was held before. Invoices
-- already in a batch waiting for its answer are left to that batch. A taxed invoice (its client has a tax
-- configuration: closeout.invoice_line_taxes, migration 0042) carries its tax, inclusive or not, and each line's
-- taxable amount, tax, rate and the client's tax code for each accounting system.
SELECT i.invoice_id AS ref, i.client_key, i.currency, i.total_minor, i.stripe_number AS doc_number,
       coalesce((p.finalized_at AT TIME ZONE 'UTC')::date, i.period_end) AS txn_date,
       coalesce(p.due_date, coalesce((p.finalized_at AT TIME ZONE 'UTC')::date, i.period_end)
                            + i.payment_terms_days) AS due_date,
       cur.exponent,
       cl.external_id AS customer_id,
       (SELECT r.review_id FROM closeout_data.accounting_link_reviews r
         WHERE r.system = %(system)s AND r.company_id = %(company_id)s AND r.object_kind = 'customer'
           AND r.closeout_ref = i.client_key AND r.state <> 'done' LIMIT 1) AS review_id,
       (SELECT bt.exchange_rate FROM closeout_data.stripe_balance_transactions bt
         WHERE upper(bt.presentment_currency) = i.currency AND upper(bt.currency) = %(home)s
           AND bt.exchange_rate IS NOT NULL
           AND (bt.invoice_id = i.invoice_id
                OR bt.created_at < coalesce(p.finalized_at, i.period_end::timestamptz) + interval '1 day')
         ORDER BY bt.invoice_id = i.invoice_id DESC, bt.created_at DESC LIMIT 1) AS ledger_rate,
       coalesce(x.attempts, 0) AS attempts,
       -- the one project every line belongs to (NULL when lines of several projects or none): with projects as
       -- QuickBooks sub-customers the invoice goes to its sub-customer (books.py), or waits for its review
       pj.project_ref, pl.external_id AS project_customer_id,
       (SELECT r.review_id FROM closeout_data.accounting_link_reviews r
         WHERE r.system = %(system)s AND r.company_id = %(company_id)s AND r.object_kind = 'project'
           AND r.closeout_ref = pj.project_ref AND r.state <> 'done' LIMIT 1) AS project_review_id,
       i.tax_minor, i.tax_inclusive, (i.tax_rate_percent IS NOT NULL OR i.tax_exempt) AS taxed,
       (SELECT jsonb_agg(jsonb_build_object('line_no', l.line_no, 'kind', l.kind, 'description', l.description,
                                            'quantity', l.quantity, 'unit_rate', l.unit_rate,
                                            'amount_minor', l.amount_minor, 'taxable_minor', t.taxable_minor,
                                            'tax_minor', t.tax_minor, 'rate_percent', t.rate_percent,
                                            'exempt', t.exempt, 'quickbooks_tax_code', t.quickbooks_tax_code,
                                            'xero_tax_type', t.xero_tax_type) ORDER BY l.line_no)
          FROM closeout.invoice_lines l
          LEFT JOIN closeout.invoice_line_taxes t ON t.invoice_id = l.invoice_id AND t.line_no = l.line_no
         WHERE l.invoice_id = i.invoice_id) AS lines
FROM closeout.invoices i
JOIN closeout_data.currencies cur ON cur.code = i.currency
LEFT JOIN closeout.stripe_publications p ON p.invoice_id = i.invoice_id
LEFT JOIN closeout_data.accounting_links cl
       ON cl.system = %(system)s AND cl.company_id = %(company_id)s AND cl.object_kind = 'customer'
      AND cl.closeout_ref = i.client_key
LEFT JOIN closeout_data.accounting_push_exceptions x
       ON x.system = %(system)s AND x.company_id = %(company_id)s AND x.object_kind = 'invoice'
      AND x.closeout_ref = i.invoice_id
LEFT JOIN LATERAL (
    SELECT i.client_key || '/' || min(l.project_key) AS project_ref
    FROM closeout.invoice_lines l WHERE l.invoice_id = i.invoice_id
    HAVING count(*) > 0 AND count(l.project_key) = count(*) AND count(DISTINCT l.project_key) = 1
) pj ON true
LEFT JOIN closeout_data.accounting_links pl
       ON pl.system = %(system)s AND pl.company_id = %(company_id)s AND pl.object_kind = 'project'
      AND pl.closeout_ref = pj.project_ref
WHERE i.status IN ('open', 'paid', 'uncollectible')
  AND i.stripe_number IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM closeout_data.accounting_links k
                  WHERE k.system = %(system)s AND k.company_id = %(company_id)s AND k.object_kind = 'invoice'
                    AND k.closeout_ref = i.invoice_id)
  AND NOT EXISTS (SELECT 1 FROM closeout_data.accounting_push_batches b
                  WHERE b.system = %(system)s AND b.company_id = %(company_id)s AND b.state = 'pending'
                    AND b.object_kind = 'invoice' AND b.items @> jsonb_build_array(jsonb_build_object('ref', i.invoice_id)))
ORDER BY txn_date, i.invoice_id
