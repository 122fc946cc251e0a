-- The journals of the pack: those of its invoices and, for a period pack, every journal that occurred in the period
-- (fees, Stripe payouts, contractor payouts ...). `start`/`end` are NULL for an invoice pack.
SELECT j.journal_id, j.kind, j.source_ref, j.currency, j.client_key, j.invoice_id, j.occurred_at, j.posted_at,
       j.reverses_journal_id, j.reversed_by_journal_id, j.description, j.ledger_run_id, j.charge_id
FROM closeout.ledger_journals j
WHERE j.invoice_id = ANY(%(invoice_ids)s::text[])
   OR (j.occurred_at >= %(start)s::date AND j.occurred_at < %(end)s::date)
ORDER BY j.posted_at, j.journal_id;
