-- Close report: invoices whose customer holds a dead payment link as the report is built (any billing period:
-- an owed invoice nobody can pay from the link they hold matters whatever month it billed), with what
-- closeout decided for it (closeout.payments.collections). From closeout.dead_payment_links.
SELECT d.invoice_id, d.stripe_invoice_id, d.stripe_number, d.client_key, d.client_name, d.currency, cur.exponent,
       d.amount_remaining_minor, d.due_date, d.expired_at, d.days_overdue, d.action, d.action_state
FROM closeout.dead_payment_links d
JOIN closeout_data.currencies cur ON cur.code = d.currency
ORDER BY d.expired_at, d.invoice_id;
