-- Close report: accounts receivable in the ledger against the unpaid remainder of open invoices, per currency,
-- over all periods (invariant 5, as closeout.receivable_by_client states it per client).
SELECT r.currency, coalesce(sum(r.ledger_receivable_minor), 0)::bigint AS ledger_receivable_minor,
       coalesce(sum(r.open_unpaid_minor), 0)::bigint AS open_unpaid_minor
FROM closeout.receivable_by_client r
GROUP BY r.currency
ORDER BY r.currency;
