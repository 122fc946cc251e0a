-- The resends to carry out (or retry): the decision, the Stripe invoice, and what the outbox holds for the key.
SELECT a.invoice_id, a.link_expired_at, a.idempotency_key, a.client_key, i.stripe_invoice_id,
       o.request AS recorded_request
FROM closeout_data.collection_actions a
JOIN closeout_data.invoices i ON i.invoice_id = a.invoice_id
LEFT JOIN closeout_data.stripe_outbox o ON o.idempotency_key = a.idempotency_key
WHERE a.state = 'pending' AND a.action = 'resend' AND i.stripe_invoice_id IS NOT NULL
ORDER BY a.decided_at, a.invoice_id
