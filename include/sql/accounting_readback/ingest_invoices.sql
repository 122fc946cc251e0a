-- The invoices that changed in this read-back, as rows of the invoice ingest the accounting_invoices check reads
-- (one row per invoice, its total and the system's own tax total on it). A deleted or voided invoice says 0: the accounting system no longer holds
-- it, and the check reports the difference against closeout's invoice. Unchanged invoices stay in earlier ingests,
-- and the check takes each number's latest row.
INSERT INTO closeout_data.accounting_xero_invoice_lines
    (ingest_id, line_no, invoice_number, contact_name, reference, invoice_type, status, invoice_date, due_date,
     currency, description, quantity, unit_amount, line_amount_minor, total_minor, tax_total_minor,
     amount_paid_minor, amount_due_minor)
SELECT %(ingest_id)s, row_number() OVER (ORDER BY o.reference, o.external_id), o.reference,
       o.raw -> 'CustomerRef' ->> 'name', o.external_id, 'Invoice', o.status, o.txn_date, NULL, o.currency,
       NULL, NULL, NULL, CASE WHEN o.deleted THEN 0 ELSE o.total_minor END,
       CASE WHEN o.deleted THEN 0 ELSE o.total_minor END, CASE WHEN o.deleted THEN 0 ELSE o.tax_minor END, NULL, NULL
FROM closeout_data.accounting_remote_objects o
WHERE o.system = %(system)s AND o.company_id = %(company_id)s AND o.run_id = %(run_id)s
  AND o.object_kind = 'invoice' AND o.reference IS NOT NULL AND o.currency IS NOT NULL
