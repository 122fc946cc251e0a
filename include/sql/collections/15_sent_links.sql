-- A send closeout did not make (someone sent the invoice from the Stripe Dashboard, or Stripe's recovery page
-- e-mailed the customer a copy) also put a fresh link in the customer's hands: each invoice's latest
-- invoice.sent event becomes the customer's link when it lives longer than the one recorded. The link's life
-- is Stripe's: the invoice's own expiry (30 days after due, at most 120 days after finalization), and 10 days
-- from the send at least. Driven from the links of invoices still owed (few), through the events' object index.
WITH sent AS (
    SELECT DISTINCT ON (l.invoice_id) l.invoice_id, e.created_at, o.obj ->> 'hosted_invoice_url' AS url,
           greatest(least(to_timestamp(coalesce((o.obj ->> 'due_date')::bigint,
                                                (o.obj -> 'status_transitions' ->> 'finalized_at')::bigint))
                              + interval '30 days',
                          to_timestamp((o.obj -> 'status_transitions' ->> 'finalized_at')::bigint) + interval '120 days'),
                    e.created_at + interval '10 days') AS expires_at
    FROM closeout_data.customer_payment_links l
    JOIN closeout_data.invoices i ON i.invoice_id = l.invoice_id AND i.status IN ('open', 'uncollectible')
    JOIN closeout_data.stripe_events e ON e.object_id = i.stripe_invoice_id AND e.event_type = 'invoice.sent'
    CROSS JOIN LATERAL (SELECT e.body -> 'data' -> 'object' AS obj) o
    WHERE o.obj ->> 'hosted_invoice_url' IS NOT NULL
    ORDER BY l.invoice_id, e.created_at DESC
)
UPDATE closeout_data.customer_payment_links l
SET hosted_invoice_url = s.url, expires_at = s.expires_at, delivered_via = 'send', delivered_at = s.created_at,
    updated_at = clock_timestamp()
FROM sent s
WHERE l.invoice_id = s.invoice_id AND s.expires_at > l.expires_at
