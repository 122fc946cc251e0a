-- The link each issued invoice's customer holds, recorded the first time collections sees the invoice: the
-- link closeout got at finalization (closeout's copy before any re-read; the events DAG sees a new invoice
-- within minutes, long before a re-read 7 days ahead of expiry replaces closeout's copy).
-- Set-based; returns nothing. No parameters.
INSERT INTO closeout_data.customer_payment_links (invoice_id, hosted_invoice_url, expires_at, delivered_via)
SELECT i.invoice_id, i.hosted_invoice_url, i.hosted_invoice_url_expires_at, 'finalize'
FROM closeout_data.invoices i
WHERE i.status IN ('open', 'uncollectible', 'paid') AND i.hosted_invoice_url_expires_at IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM closeout_data.customer_payment_links l WHERE l.invoice_id = i.invoice_id)
ON CONFLICT (invoice_id) DO NOTHING
