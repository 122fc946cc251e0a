-- 0022 collections: no customer holds a dead payment link (closeout.payments.collections, docs/collections.md).
--
-- Stripe's hosted invoice page link expires 30 days after the due date, never more than 120 days after
-- finalization; the due date of an open invoice cannot be changed. closeout re-reads links close to expiry
-- (its own copy stays live), but the customer still holds the link they were given. Once that link has
-- expired on an invoice still owed, the client's collections_policy decides: 'resend' e-mails the invoice
-- with a fresh link (POST /v1/invoices/{id}/send, through the Stripe outbox), 'notify_finance' tells finance
-- once through the alert path. Each decision is one row per invoice and expired link: never taken twice.

ALTER TABLE closeout_data.billing_clients
    ADD COLUMN collections_policy text NOT NULL DEFAULT 'resend'
        CHECK (collections_policy IN ('resend', 'notify_finance'));

CREATE OR REPLACE VIEW closeout.billing_clients AS
SELECT client_key, name, email, billing_period, currency, grouping, require_approval, payment_terms_days,
       rounding, publish_policy, updated_at, credit_note_policy, collections_policy
FROM closeout_data.billing_clients;

-- The hosted page link the customer holds: the one issued at finalization (closeout's copy as first seen,
-- before any re-read), then each link a send e-mailed them. closeout's own copy (closeout.invoices.
-- hosted_invoice_url) may be newer: re-reading a link does not put it in the customer's hands.
CREATE TABLE closeout_data.customer_payment_links (
    invoice_id          text PRIMARY KEY REFERENCES closeout_data.invoices,
    hosted_invoice_url  text,
    expires_at          timestamptz NOT NULL,
    delivered_via       text NOT NULL CHECK (delivered_via IN ('finalize', 'send')),
    delivered_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at          timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX customer_payment_links_expiry ON closeout_data.customer_payment_links (expires_at);

INSERT INTO closeout_data.customer_payment_links (invoice_id, hosted_invoice_url, expires_at, delivered_via)
SELECT invoice_id, hosted_invoice_url, hosted_invoice_url_expires_at, 'finalize'
FROM closeout_data.invoices
WHERE status IN ('open', 'uncollectible', 'paid') AND hosted_invoice_url_expires_at IS NOT NULL;

-- One decision per invoice and expired link. resend: the outbox key (deterministic from the invoice and the
-- expiry) is recorded here and in the outbox before the call; the fresh link comes back into
-- new_hosted_invoice_url. notify_finance: the alert cause, delivered once per channel (alert_deliveries).
-- state: pending (to do or to retry), done, failed (Stripe refused: a person looks), skipped (paid or void
-- before the action ran: nothing to collect).
CREATE TABLE closeout_data.collection_actions (
    invoice_id              text NOT NULL REFERENCES closeout_data.invoices,
    link_expired_at         timestamptz NOT NULL,
    action                  text NOT NULL CHECK (action IN ('resend', 'notify_finance')),
    state                   text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed', 'skipped')),
    client_key              text NOT NULL,
    currency                text NOT NULL,
    amount_remaining_minor  bigint NOT NULL,
    due_date                date,
    idempotency_key         text,
    alert_cause_id          bigint REFERENCES closeout_data.alert_causes,
    new_hosted_invoice_url  text,
    new_link_expires_at     timestamptz,
    attempts                integer NOT NULL DEFAULT 0,
    detail                  text,
    decided_at              timestamptz NOT NULL DEFAULT clock_timestamp(),
    completed_at            timestamptz,
    PRIMARY KEY (invoice_id, link_expired_at),
    CHECK ((action = 'resend') = (idempotency_key IS NOT NULL)),
    CHECK ((state IN ('pending')) = (completed_at IS NULL))
);
CREATE INDEX collection_actions_pending ON closeout_data.collection_actions (action) WHERE state = 'pending';

-- The Stripe outbox takes invoice.send. Widened from whatever the constraint holds when this runs (0021 adds
-- the credit note operations), together with every operation known when this was written, so the order in
-- which 0021 and 0022 run does not matter. The operation names are read from the constraint's text whether
-- it is written as a list or as an array literal, and it is written back as a list (`operation IN (...)`),
-- the form 0005 and 0021's own widening read.
DO $$
DECLARE
    found record;
    operations text[] := ARRAY['customer.create', 'invoice.create', 'invoice.add_lines', 'invoice.finalize',
                               'credit_note.create', 'customer_balance.credit', 'invoice.send'];
BEGIN
    FOR found IN
        SELECT c.conname, pg_get_constraintdef(c.oid) AS definition FROM pg_constraint c
        WHERE c.conrelid = 'closeout_data.stripe_outbox'::regclass AND c.contype = 'c'
          AND pg_get_constraintdef(c.oid) LIKE '%operation%'
    LOOP
        operations := operations
            || array(SELECT m[1] FROM regexp_matches(found.definition, '([a-z_]+\.[a-z_]+)', 'g') m);
        EXECUTE format('ALTER TABLE closeout_data.stripe_outbox DROP CONSTRAINT IF EXISTS %I', found.conname);
    END LOOP;
    EXECUTE format('ALTER TABLE closeout_data.stripe_outbox ADD CONSTRAINT stripe_outbox_operation_check '
                   'CHECK (operation IN (%s))',
                   (SELECT string_agg(quote_literal(op), ', ' ORDER BY op)
                    FROM (SELECT DISTINCT unnest(operations) AS op) o));
END $$;

-- ---------------------------------------------------------------------------------------------
-- Public views
-- ---------------------------------------------------------------------------------------------
-- Every collections decision, with what became of it.
CREATE VIEW closeout.collection_actions AS
SELECT a.invoice_id, i.stripe_invoice_id, i.stripe_number, a.client_key, coalesce(bc.name, a.client_key) AS client_name,
       a.currency, a.amount_remaining_minor, a.due_date, a.link_expired_at, a.action, a.state, a.idempotency_key,
       a.alert_cause_id, a.new_hosted_invoice_url, a.new_link_expires_at, a.attempts, a.detail, a.decided_at,
       a.completed_at
FROM closeout_data.collection_actions a
JOIN closeout_data.invoices i ON i.invoice_id = a.invoice_id
LEFT JOIN closeout_data.billing_clients bc ON bc.client_key = a.client_key;

-- Invoices whose customer holds a dead link right now: still owed (open or uncollectible, something left to
-- pay) and the link the customer was last given has expired. action/action_state: what closeout decided for
-- that expired link (null: not decided yet; the next events run decides).
CREATE VIEW closeout.dead_payment_links AS
SELECT i.invoice_id, i.stripe_invoice_id, i.stripe_number, i.client_key, coalesce(bc.name, i.client_key) AS client_name,
       i.currency, (i.total_minor - i.amount_paid_minor
                    - coalesce((SELECT sum(c.pre_payment_amount_minor) FROM closeout_data.corrections c
                                WHERE c.invoice_id = i.invoice_id AND c.state = 'issued'), 0))::bigint
           AS amount_remaining_minor,
       p.due_date, l.expires_at AS expired_at, l.hosted_invoice_url AS dead_url, l.delivered_via,
       (current_date - p.due_date) AS days_overdue,
       a.action, a.state AS action_state, a.decided_at, a.completed_at
FROM closeout_data.customer_payment_links l
JOIN closeout_data.invoices i ON i.invoice_id = l.invoice_id
LEFT JOIN closeout_data.stripe_publications p ON p.invoice_id = i.invoice_id
LEFT JOIN closeout_data.billing_clients bc ON bc.client_key = i.client_key
LEFT JOIN closeout_data.collection_actions a ON a.invoice_id = l.invoice_id AND a.link_expired_at = l.expires_at
WHERE i.status IN ('open', 'uncollectible') AND l.expires_at <= now()
  AND i.total_minor - i.amount_paid_minor
      - coalesce((SELECT sum(c.pre_payment_amount_minor) FROM closeout_data.corrections c
                  WHERE c.invoice_id = i.invoice_id AND c.state = 'issued'), 0) > 0;
