-- One decision per invoice whose customer holds a dead link and that has none for that expired link yet,
-- by the client's collections_policy (the client's row, else the defaults row '*', else resend).
-- A resend carries its Stripe idempotency key from now on: <prefix>/invoice/<id>/send/<expiry, unix seconds>,
-- hashed past 255 characters as closeout.payments.keys does. Parameters: prefix. Returns the decisions made.
INSERT INTO closeout_data.collection_actions (invoice_id, link_expired_at, action, client_key, currency,
                                              amount_remaining_minor, due_date, idempotency_key)
SELECT d.invoice_id, d.expired_at, d.policy, d.client_key, d.currency, d.amount_remaining_minor, d.due_date,
       CASE WHEN d.policy = 'resend' THEN
           CASE WHEN length(d.key) <= 255 THEN d.key
                ELSE left(d.key, 190) || '~' || encode(sha256(convert_to(d.key, 'UTF8')), 'hex') END
       END
FROM (SELECT v.invoice_id, v.expired_at, v.client_key, v.currency, v.amount_remaining_minor, v.due_date,
             coalesce(bc.collections_policy, df.collections_policy, 'resend') AS policy,
             %(prefix)s || '/invoice/' || v.invoice_id || '/send/' || extract(epoch FROM v.expired_at)::bigint AS key
      FROM closeout.dead_payment_links v
      LEFT JOIN closeout_data.billing_clients bc ON bc.client_key = v.client_key
      LEFT JOIN closeout_data.billing_clients df ON df.client_key = '*'
      WHERE v.action IS NULL) d
ON CONFLICT (invoice_id, link_expired_at) DO NOTHING
RETURNING invoice_id, action
