-- Close report: work on the period's paid invoices that is not paid out, and why, per kind: the planning's reasons
-- (no payee configuration, a non-positive amount) and transfers Stripe refused for good (their items stopped),
-- open ones only (a resolved refusal was sent again or given up, on record). Refusals carry their sentences.
SELECT x.kind AS reason, count(*) AS items, coalesce(sum(x.hours), 0) AS hours,
       coalesce(sum(x.entry_count), 0) AS entries,
       array_agg(DISTINCT x.payee_key ORDER BY x.payee_key) AS payees,
       coalesce(array_agg(x.reason ORDER BY x.reason) FILTER (WHERE x.kind <> x.reason), '{}') AS details
FROM closeout.payout_exceptions x
JOIN closeout.invoices i ON i.invoice_id = x.invoice_id
WHERE i.period_start BETWEEN %(period_start)s AND %(period_end)s AND x.resolved_at IS NULL
GROUP BY x.kind
ORDER BY x.kind;
