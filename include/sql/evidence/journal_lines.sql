-- The lines of the pack's journals (contract view closeout.ledger_lines), as posted.
SELECT l.journal_id, l.line_no, l.posted_at, l.account, l.account_name, l.role, l.currency, l.debit_minor,
       l.credit_minor, l.source_ref, l.kind, l.invoice_id, l.client_key
FROM closeout.ledger_lines l
WHERE l.journal_id IN (
    SELECT j.journal_id FROM closeout.ledger_journals j
    WHERE j.invoice_id = ANY(%(invoice_ids)s::text[])
       OR (j.occurred_at >= %(start)s::date AND j.occurred_at < %(end)s::date)
)
ORDER BY l.posted_at, l.journal_id, l.line_no;
