-- The finance notices to send (or retry), with what the alert says.
SELECT a.invoice_id, a.link_expired_at, a.alert_cause_id, a.client_key, coalesce(bc.name, a.client_key) AS client_name,
       a.currency, c.exponent, a.amount_remaining_minor, a.due_date, i.stripe_invoice_id, i.stripe_number,
       i.hosted_invoice_url_expires_at AS closeout_link_expires_at
FROM closeout_data.collection_actions a
JOIN closeout_data.invoices i ON i.invoice_id = a.invoice_id
LEFT JOIN closeout_data.currencies c ON c.code = a.currency
LEFT JOIN closeout_data.billing_clients bc ON bc.client_key = a.client_key
WHERE a.state = 'pending' AND a.action = 'notify_finance'
ORDER BY a.decided_at, a.invoice_id
