-- Pending decisions whose dead link is gone (the invoice paid, voided or credited to nothing, or a newer link
-- delivered) are not carried out: there is nothing to collect with them. A resend whose call may already have reached Stripe (its outbox row is
-- pending) has that row closed too, so the outbox holds nothing waiting forever. Returns the skipped ones.
WITH settled AS (
    UPDATE closeout_data.collection_actions a
    SET state = 'skipped', completed_at = clock_timestamp(),
        detail = 'not carried out: the invoice is ' || i.status || ' and its customer no longer holds this dead link'
    FROM closeout_data.invoices i
    WHERE a.state = 'pending' AND i.invoice_id = a.invoice_id
      AND NOT EXISTS (SELECT 1 FROM closeout.dead_payment_links d
                      WHERE d.invoice_id = a.invoice_id AND d.expired_at = a.link_expired_at)
    RETURNING a.invoice_id, a.idempotency_key
), closed AS (
    UPDATE closeout_data.stripe_outbox o
    SET status = 'failed', completed_at = clock_timestamp(),
        last_error = 'not retried: the invoice no longer needs this send'
    FROM settled s
    WHERE o.idempotency_key = s.idempotency_key AND o.status = 'pending'
    RETURNING o.idempotency_key
)
SELECT s.invoice_id FROM settled s
