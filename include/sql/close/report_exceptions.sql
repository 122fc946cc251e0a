-- Close report: what is stuck or kept out, for a person to look at. Open payment exceptions on the period's
-- invoices (or not tied to an invoice), billing exceptions of entries spent in the month, and open quarantined
-- time entries: a bad version of an entry seen valid before is its client's (when spent in the month); a record
-- never seen valid has no trustworthy client, so it is listed without one rather than dropped or guessed at.
SELECT 'payment' AS source, coalesce(i.client_key, '') AS client_key, coalesce(e.currency, i.currency, '') AS currency,
       e.kind, coalesce(e.invoice_id, e.stripe_object_id, '') AS record, '' AS field, e.message AS reason
FROM closeout.payment_exceptions e
LEFT JOIN closeout.invoices i ON i.invoice_id = e.invoice_id
WHERE e.resolved_at IS NULL
  AND (i.period_start BETWEEN %(period_start)s AND %(period_end)s OR e.invoice_id IS NULL)
UNION ALL
SELECT 'billing', coalesce(b.client_key, ''), coalesce(b.currency, ''), b.kind, b.source || ':' || b.source_id,
       coalesce(b.field, ''), b.reason
FROM closeout.billing_exceptions b
WHERE b.kind = 'exception' AND b.spent_date BETWEEN %(period_start)s AND %(period_end)s
UNION ALL
SELECT 'quarantine', coalesce(t.client_key, ''), coalesce(t.currency, ''), 'quarantined',
       q.source || ':' || coalesce(q.source_id, '?'), coalesce(q.field, ''), q.reason
FROM closeout.quarantine q
LEFT JOIN closeout.time_entries t ON t.source = q.source AND t.source_id = q.source_id
WHERE q.entity = 'time_entry' AND q.resolved_at IS NULL
  AND (t.source_id IS NULL OR t.spent_date BETWEEN %(period_start)s AND %(period_end)s)
ORDER BY 1, 2, 3, 4, 5, 6, 7;
