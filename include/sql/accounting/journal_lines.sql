-- Ledger lines posted in [start, end) UTC, by journal and line: the closeout.ledger_lines contract columns, plus
-- the customer's name where source_ref leads to one of our invoices (QuickBooks wants a Name on receivable lines):
-- an invoice id, an invoice id with a ':n' suffix, or a payment_ref (unique). Journals of the kinds the invoice
-- files already carry (%(invoice_file_kinds)s: an invoice's finalisation and its void reversal) are left out, so
-- importing both the invoice files and the journal files counts revenue and receivables once.
SELECT l.journal_id, l.line_no, l.posted_at, l.account, l.currency, l.debit_minor, l.credit_minor,
       l.source_ref, coalesce(c.name, i.client_key) AS name
FROM closeout.ledger_lines l
LEFT JOIN closeout.invoice_payments p ON p.payment_ref = l.source_ref::text
LEFT JOIN closeout.invoices i ON i.invoice_id = coalesce(p.invoice_id, split_part(l.source_ref::text, ':', 1))
LEFT JOIN closeout.billing_clients c ON c.client_key = i.client_key
WHERE l.posted_at >= %(start)s::timestamp AT TIME ZONE 'UTC'
  AND l.posted_at < %(end)s::timestamp AT TIME ZONE 'UTC'
  AND l.kind <> ALL(%(invoice_file_kinds)s::text[])
ORDER BY l.journal_id, l.line_no
