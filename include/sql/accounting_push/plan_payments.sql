-- Payments Stripe confirmed (closeout.invoice_payments, kind payment) not yet in the accounting system, each
-- with the invoice it pays as the books know it (its link; NULL while the invoice is not there yet) and the rate
-- the ledger used for its charge when the invoice is in a foreign currency.
SELECT ip.payment_ref AS ref, i.client_key, ip.currency, ip.amount_minor AS total_minor,
       (ip.occurred_at AT TIME ZONE 'UTC')::date AS txn_date, cur.exponent, ip.invoice_id,
       il.external_id AS invoice_external_id, cl.external_id AS customer_id,
       (SELECT bt.exchange_rate FROM closeout_data.stripe_balance_transactions bt
         WHERE upper(bt.presentment_currency) = ip.currency AND upper(bt.currency) = %(home)s
           AND bt.exchange_rate IS NOT NULL
           AND (bt.charge_id = ip.charge_id OR bt.invoice_id = ip.invoice_id OR bt.created_at <= ip.occurred_at)
         ORDER BY bt.charge_id IS NOT DISTINCT FROM ip.charge_id DESC, bt.invoice_id = ip.invoice_id DESC,
                  bt.created_at DESC LIMIT 1) AS ledger_rate,
       coalesce(x.attempts, 0) AS attempts,
       ic.customer_id AS invoice_customer_id
FROM closeout.invoice_payments ip
JOIN closeout.invoices i ON i.invoice_id = ip.invoice_id
JOIN closeout_data.currencies cur ON cur.code = ip.currency
LEFT JOIN closeout_data.accounting_links il
       ON il.system = %(system)s AND il.company_id = %(company_id)s AND il.object_kind = 'invoice'
      AND il.closeout_ref = ip.invoice_id
LEFT JOIN closeout_data.accounting_links cl
       ON cl.system = %(system)s AND cl.company_id = %(company_id)s AND cl.object_kind = 'customer'
      AND cl.closeout_ref = i.client_key
LEFT JOIN closeout_data.accounting_push_exceptions x
       ON x.system = %(system)s AND x.company_id = %(company_id)s AND x.object_kind = 'payment'
      AND x.closeout_ref = ip.payment_ref
-- the QuickBooks customer the invoice itself was sent to (a project's sub-customer or the client's customer), from
-- the body of the batch that carried it: a payment is received from the invoice's own customer. Read once per run,
-- set-based, and only where some project has a sub-customer (else every invoice went to its client's customer)
LEFT JOIN (
    SELECT DISTINCT ON (it.item ->> 'ref') it.item ->> 'ref' AS invoice_id,
           b.payload -> (it.n::int - 1) -> 'CustomerRef' ->> 'value' AS customer_id
    FROM closeout_data.accounting_push_batches b
    CROSS JOIN LATERAL jsonb_array_elements(b.items) WITH ORDINALITY AS it(item, n)
    WHERE b.system = %(system)s AND b.company_id = %(company_id)s AND b.object_kind = 'invoice'
      AND b.state IN ('answered', 'looked_up')
      AND EXISTS (SELECT 1 FROM closeout_data.accounting_links pl
                  WHERE pl.system = %(system)s AND pl.company_id = %(company_id)s AND pl.object_kind = 'project')
    ORDER BY it.item ->> 'ref', b.batch_id DESC
) ic ON ic.invoice_id = ip.invoice_id AND il.external_id IS NOT NULL
WHERE ip.kind = 'payment' AND ip.amount_minor > 0
  AND NOT EXISTS (SELECT 1 FROM closeout_data.accounting_links k
                  WHERE k.system = %(system)s AND k.company_id = %(company_id)s AND k.object_kind = 'payment'
                    AND k.closeout_ref = ip.payment_ref)
  AND NOT EXISTS (SELECT 1 FROM closeout_data.accounting_push_batches b
                  WHERE b.system = %(system)s AND b.company_id = %(company_id)s AND b.state = 'pending'
                    AND b.object_kind = 'payment' AND b.items @> jsonb_build_array(jsonb_build_object('ref', ip.payment_ref)))
ORDER BY txn_date, ip.payment_ref
