-- Close report, cash: collected against billed per client, for the period's issued invoices (billing periods
-- starting in the month, as report_clients.sql), in the invoice's currency (what the customer was billed and paid
-- in; a charge settled in another currency is shown at its presentment amount). From Stripe's own records as the
-- cash sync read them: charges that succeeded, refunds not failed, disputes not won; and the credit notes issued.
-- net collected = collected - refunded - disputed. The client's name is the billing configuration's, else the
-- tracker's (the first name any tracker gives the client's key), the key beside it.
-- Parameters: period_start, period_end (the month's first and last day).
WITH invoices AS (
    SELECT i.invoice_id, i.client_key, i.currency, i.total_minor
    FROM closeout.invoices i
    WHERE i.period_start BETWEEN %(period_start)s AND %(period_end)s
      AND i.status IN ('publishing', 'open', 'paid', 'uncollectible')
), charges AS (
    SELECT c.invoice_id, sum(c.amount_minor) AS collected_minor, count(*) AS charges
    FROM closeout.stripe_charges c
    WHERE c.status = 'succeeded' AND c.invoice_id IN (SELECT invoice_id FROM invoices)
    GROUP BY c.invoice_id
), refunds AS (
    SELECT r.invoice_id, sum(r.amount_minor) AS refunded_minor
    FROM closeout.refunds r
    WHERE r.status NOT IN ('failed', 'canceled') AND r.invoice_id IN (SELECT invoice_id FROM invoices)
    GROUP BY r.invoice_id
), disputes AS (
    SELECT d.invoice_id, sum(d.amount_minor) AS disputed_minor
    FROM closeout.disputes d
    WHERE d.status NOT IN ('won', 'warning_closed', 'prevented') AND d.invoice_id IN (SELECT invoice_id FROM invoices)
    GROUP BY d.invoice_id
), credited AS (
    SELECT n.invoice_id, sum(n.amount_minor) AS credited_minor
    FROM closeout.credit_notes n
    WHERE n.status = 'issued' AND n.invoice_id IN (SELECT invoice_id FROM invoices)
    GROUP BY n.invoice_id
), tracker_names AS (
    SELECT coalesce(m.key, t.source || ':' || t.source_id) AS client_key, min(t.name) AS name
    FROM closeout_data.tracker_entities t
    LEFT JOIN closeout.identity_map m ON m.source = t.source AND m.kind = 'client' AND m.source_id = t.source_id
    WHERE t.kind = 'client' AND t.name IS NOT NULL
    GROUP BY 1
)
SELECT i.client_key, coalesce(nullif(b.name, ''), tn.name, '') AS client_name, i.currency, cur.exponent,
       count(*) AS invoices, sum(i.total_minor) AS billed_minor,
       coalesce(sum(n.credited_minor), 0) AS credited_minor,
       coalesce(sum(c.collected_minor), 0) AS collected_minor,
       coalesce(sum(r.refunded_minor), 0) AS refunded_minor,
       coalesce(sum(d.disputed_minor), 0) AS disputed_minor,
       coalesce(sum(c.collected_minor), 0) - coalesce(sum(r.refunded_minor), 0) - coalesce(sum(d.disputed_minor), 0)
           AS net_collected_minor
FROM invoices i
JOIN closeout_data.currencies cur ON cur.code = i.currency
LEFT JOIN closeout.billing_clients b ON b.client_key = i.client_key
LEFT JOIN tracker_names tn ON tn.client_key = i.client_key
LEFT JOIN charges c ON c.invoice_id = i.invoice_id
LEFT JOIN refunds r ON r.invoice_id = i.invoice_id
LEFT JOIN disputes d ON d.invoice_id = i.invoice_id
LEFT JOIN credited n ON n.invoice_id = i.invoice_id
GROUP BY i.client_key, b.name, tn.name, i.currency, cur.exponent
ORDER BY i.currency, i.client_key;
