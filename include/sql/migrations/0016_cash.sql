-- Cash: following the money inside Stripe (issue 13). Charges, balance transactions (Stripe's own ledger),
-- Stripe payouts to the bank, refunds, credit notes, disputes, invoice payments, and the invoices Stripe itself
-- lists, as read by closeout.payments.cash from the list endpoints and from the same objects' events.
--
-- Conventions (the cash contract, docs/stripe-cash.md):
--   * currencies UPPER case ISO codes; amounts bigint minor units;
--   * balance transaction amounts, fees and nets SIGNED as Stripe signs them (refund, payout and dispute
--     withdrawals negative); object amounts (charge, refund, credit note, dispute, payout) positive, as Stripe;
--   * a row holds the newest state Stripe reported: every upsert compares Stripe's state (status rank, then the
--     time of the snapshot, `observed_at`) and never moves a row back, whatever order list reads and events come in;
--   * `first_seen_at` is when closeout first recorded the object, `updated_at` when a newer state last changed it.

-- How far a status has got, per Stripe object kind. Final states share the top rank of their kind except where
-- Stripe documents a later move (a paid payout can still fail; a succeeded refund can still fail).
CREATE FUNCTION closeout_data.stripe_status_rank(kind text, status text) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(CASE kind
        WHEN 'balance_transaction' THEN CASE status WHEN 'pending' THEN 0 WHEN 'available' THEN 1 END
        WHEN 'charge' THEN CASE status WHEN 'pending' THEN 0 WHEN 'succeeded' THEN 1 WHEN 'failed' THEN 1 END
        WHEN 'payout' THEN CASE status WHEN 'pending' THEN 0 WHEN 'in_transit' THEN 1 WHEN 'paid' THEN 2
                                       WHEN 'failed' THEN 3 WHEN 'canceled' THEN 3 END
        WHEN 'payout_reconciliation' THEN CASE status WHEN 'not_applicable' THEN 0 WHEN 'in_progress' THEN 0
                                                      WHEN 'completed' THEN 1 END
        WHEN 'refund' THEN CASE status WHEN 'requires_action' THEN 0 WHEN 'pending' THEN 1 WHEN 'succeeded' THEN 2
                                       WHEN 'failed' THEN 3 WHEN 'canceled' THEN 3 END
        WHEN 'credit_note' THEN CASE status WHEN 'issued' THEN 0 WHEN 'void' THEN 1 END
        WHEN 'dispute' THEN CASE status WHEN 'warning_needs_response' THEN 0 WHEN 'warning_under_review' THEN 1
                                        WHEN 'needs_response' THEN 2 WHEN 'under_review' THEN 3
                                        WHEN 'warning_closed' THEN 4 WHEN 'won' THEN 4 WHEN 'lost' THEN 4
                                        WHEN 'prevented' THEN 4 END
        WHEN 'invoice' THEN CASE status WHEN 'draft' THEN 0 WHEN 'open' THEN 1 WHEN 'uncollectible' THEN 2
                                        WHEN 'paid' THEN 3 WHEN 'void' THEN 3 END
        WHEN 'invoice_payment' THEN CASE status WHEN 'open' THEN 0 WHEN 'paid' THEN 1 WHEN 'canceled' THEN 1 END
    END, 0)
$$;

CREATE TABLE closeout_data.stripe_charges (
    charge_id               text PRIMARY KEY,
    payment_intent_id       text,
    invoice_id              text,          -- closeout invoice, through the invoice payment / Stripe invoice
    stripe_invoice_id       text,
    invoice_payment_id      text,
    customer_id             text,
    currency                text NOT NULL, -- presentment currency (what the customer paid in)
    amount_minor            bigint NOT NULL,
    amount_refunded_minor   bigint NOT NULL DEFAULT 0,
    balance_transaction_id  text,
    status                  text NOT NULL,
    disputed                boolean NOT NULL DEFAULT false,
    created_at              timestamptz NOT NULL,
    observed_at             timestamptz NOT NULL,
    first_seen_at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at              timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX stripe_charges_payment_intent ON closeout_data.stripe_charges (payment_intent_id);
CREATE INDEX stripe_charges_invoice ON closeout_data.stripe_charges (invoice_id);
CREATE INDEX stripe_charges_unlinked ON closeout_data.stripe_charges (created_at) WHERE invoice_id IS NULL;

CREATE TABLE closeout_data.stripe_balance_transactions (
    balance_transaction_id    text PRIMARY KEY,
    type                      text NOT NULL,
    reporting_category        text,
    currency                  text NOT NULL, -- SETTLEMENT currency
    amount_minor              bigint NOT NULL,
    fee_minor                 bigint NOT NULL DEFAULT 0,
    net_minor                 bigint NOT NULL,
    fee_details               jsonb NOT NULL DEFAULT '[]',
    exchange_rate             numeric,
    source_id                 text,
    source_type               text,
    payout_id                 text,          -- the automatic payout that carried it (GET ?payout=)
    status                    text NOT NULL,
    description               text,
    created_at                timestamptz NOT NULL,
    available_on              timestamptz,
    charge_id                 text,
    invoice_id                text,
    presentment_currency      text,
    presentment_amount_minor  bigint,        -- signed as the transaction's amount
    observed_at               timestamptz NOT NULL,
    first_seen_at             timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at                timestamptz NOT NULL DEFAULT clock_timestamp(),
    CHECK (net_minor = amount_minor - fee_minor)
);
CREATE INDEX stripe_balance_transactions_created ON closeout_data.stripe_balance_transactions (created_at);
CREATE INDEX stripe_balance_transactions_source ON closeout_data.stripe_balance_transactions (source_id);
CREATE INDEX stripe_balance_transactions_payout ON closeout_data.stripe_balance_transactions (payout_id);
CREATE INDEX stripe_balance_transactions_charge ON closeout_data.stripe_balance_transactions (charge_id);
CREATE INDEX stripe_balance_transactions_pending ON closeout_data.stripe_balance_transactions (available_on)
    WHERE status = 'pending';
-- rows whose charge / invoice / presentment amount the resolve step has not settled yet
CREATE INDEX stripe_balance_transactions_unresolved ON closeout_data.stripe_balance_transactions (source_id)
    WHERE source_type IN ('charge', 'refund', 'dispute') AND (invoice_id IS NULL OR presentment_amount_minor IS NULL);

CREATE TABLE closeout_data.stripe_payouts (
    payout_id                       text PRIMARY KEY,
    currency                        text NOT NULL,
    amount_minor                    bigint NOT NULL,
    status                          text NOT NULL,
    automatic                       boolean NOT NULL,
    arrival_date                    date,
    created_at                      timestamptz NOT NULL,
    balance_transaction_id          text,
    failure_balance_transaction_id  text,
    failure_code                    text,
    failure_message                 text,
    method                          text,
    type                            text,
    reconciliation_status           text,
    txns_linked_at                  timestamptz,  -- when its carried transactions were listed and linked
    txn_count                       integer,
    observed_at                     timestamptz NOT NULL,
    first_seen_at                   timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at                      timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX stripe_payouts_to_link ON closeout_data.stripe_payouts (created_at)
    WHERE automatic AND txns_linked_at IS NULL;

CREATE TABLE closeout_data.refunds (
    refund_id                       text PRIMARY KEY,
    invoice_id                      text,
    charge_id                       text,
    payment_intent_id               text,
    credit_note_id                  text,
    currency                        text NOT NULL,
    amount_minor                    bigint NOT NULL,
    status                          text NOT NULL,
    reason                          text,
    failure_reason                  text,
    balance_transaction_id          text,
    failure_balance_transaction_id  text,
    metadata                        jsonb NOT NULL DEFAULT '{}',
    created_at                      timestamptz NOT NULL,
    observed_at                     timestamptz NOT NULL,
    first_seen_at                   timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at                      timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX refunds_charge ON closeout_data.refunds (charge_id);
CREATE INDEX refunds_invoice ON closeout_data.refunds (invoice_id);

CREATE TABLE closeout_data.credit_notes (
    credit_note_id              text PRIMARY KEY,
    invoice_id                  text,
    stripe_invoice_id           text,
    customer_id                 text,
    number                      text,
    currency                    text NOT NULL,
    amount_minor                bigint NOT NULL,
    pre_payment_amount_minor    bigint NOT NULL DEFAULT 0,
    post_payment_amount_minor   bigint NOT NULL DEFAULT 0,
    refund_amount_minor         bigint NOT NULL DEFAULT 0,
    credit_amount_minor         bigint NOT NULL DEFAULT 0,
    out_of_band_amount_minor    bigint NOT NULL DEFAULT 0,
    refund_ids                  text[] NOT NULL DEFAULT '{}',
    type                        text,
    status                      text NOT NULL,
    reason                      text,
    memo                        text,
    metadata                    jsonb NOT NULL DEFAULT '{}',
    created_at                  timestamptz NOT NULL,
    voided_at                   timestamptz,
    observed_at                 timestamptz NOT NULL,
    first_seen_at               timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at                  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX credit_notes_invoice ON closeout_data.credit_notes (invoice_id);
CREATE INDEX credit_notes_stripe_invoice ON closeout_data.credit_notes (stripe_invoice_id);

CREATE TABLE closeout_data.disputes (
    dispute_id          text PRIMARY KEY,
    invoice_id          text,
    charge_id           text,
    payment_intent_id   text,
    currency            text NOT NULL,
    amount_minor        bigint NOT NULL,
    status              text NOT NULL,
    reason              text,
    created_at          timestamptz NOT NULL,
    closed_at           timestamptz,
    observed_at         timestamptz NOT NULL,
    first_seen_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at          timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX disputes_charge ON closeout_data.disputes (charge_id);
CREATE INDEX disputes_invoice ON closeout_data.disputes (invoice_id);

-- Stripe's InvoicePayment objects: which PaymentIntent / charge paid which Stripe invoice (API 2025-03-31+).
CREATE TABLE closeout_data.stripe_invoice_payments (
    invoice_payment_id  text PRIMARY KEY,
    stripe_invoice_id   text NOT NULL,
    payment_type        text,
    payment_intent_id   text,
    charge_id           text,
    currency            text NOT NULL,
    amount_paid_minor   bigint,
    status              text NOT NULL,
    paid_at             timestamptz,
    created_at          timestamptz NOT NULL,
    observed_at         timestamptz NOT NULL,
    first_seen_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at          timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX stripe_invoice_payments_intent ON closeout_data.stripe_invoice_payments (payment_intent_id);
CREATE INDEX stripe_invoice_payments_charge ON closeout_data.stripe_invoice_payments (charge_id);
CREATE INDEX stripe_invoice_payments_invoice ON closeout_data.stripe_invoice_payments (stripe_invoice_id);

-- What Stripe itself lists as invoices (list endpoint only, never events): Dashboard-made invoices included.
CREATE TABLE closeout_data.stripe_invoice_snapshots (
    stripe_invoice_id                        text PRIMARY KEY,
    customer_id                              text,
    invoice_id                               text,  -- closeout invoice: publications, else metadata
    number                                   text,
    currency                                 text NOT NULL,
    status                                   text,
    total_minor                              bigint,
    amount_due_minor                         bigint,
    amount_paid_minor                        bigint,
    amount_remaining_minor                   bigint,
    pre_payment_credit_notes_amount_minor    bigint,
    post_payment_credit_notes_amount_minor   bigint,
    created_at                               timestamptz NOT NULL,
    metadata                                 jsonb NOT NULL DEFAULT '{}',
    seen_at                                  timestamptz NOT NULL,
    first_seen_at                            timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at                               timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX stripe_invoice_snapshots_invoice ON closeout_data.stripe_invoice_snapshots (invoice_id);
CREATE INDEX stripe_invoice_snapshots_unsettled ON closeout_data.stripe_invoice_snapshots (created_at)
    WHERE status IN ('draft', 'open', 'uncollectible');

-- Stripe's balance per settlement currency, as /v1/balance (or a balance.available event) last said.
CREATE TABLE closeout_data.stripe_balances (
    currency           text PRIMARY KEY,
    available_minor    bigint NOT NULL,
    pending_minor      bigint NOT NULL,
    observed_at        timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Where each list stream resumes. `last_created`: the newest `created` fully listed; `state`: the listing in
-- progress ({"gte", "lt", "starting_after", "newest"}), committed with every page, so a killed sync goes on
-- where it stopped; plus per-stream bookkeeping (e.g. when unsettled objects were last re-read).
CREATE TABLE closeout_data.stripe_cash_cursors (
    stream        text PRIMARY KEY,
    last_created  bigint,
    state         jsonb NOT NULL DEFAULT '{}',
    updated_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- The cash apply step reads the same event rows as the invoice apply step, independently: its own outcome.
ALTER TABLE closeout_data.stripe_events
    ADD COLUMN cash_applied_at timestamptz,
    ADD COLUMN cash_outcome text CHECK (cash_outcome IN ('applied', 'stale', 'ignored'));
CREATE INDEX stripe_events_cash_to_apply ON closeout_data.stripe_events (created_at, event_id)
    WHERE cash_applied_at IS NULL
      AND object_type IN ('charge', 'refund', 'credit_note', 'dispute', 'payout', 'invoice_payment', 'balance');

-- ---------------------------------------------------------------------------------------------
-- Views for finance and auditors (the public contract: columns may be added, never renamed)
-- ---------------------------------------------------------------------------------------------
CREATE VIEW closeout.stripe_balance_transactions AS
SELECT balance_transaction_id, type, reporting_category, currency, amount_minor, fee_minor, net_minor, exchange_rate,
       source_id, payout_id, status, created_at, available_on,
       source_type, fee_details, description, charge_id, invoice_id, presentment_currency, presentment_amount_minor,
       first_seen_at, updated_at
FROM closeout_data.stripe_balance_transactions;

CREATE VIEW closeout.stripe_payouts AS
SELECT payout_id, currency, amount_minor, status, automatic, arrival_date,
       created_at, balance_transaction_id, failure_balance_transaction_id, failure_code, failure_message, method, type,
       reconciliation_status, txns_linked_at, txn_count, first_seen_at, updated_at
FROM closeout_data.stripe_payouts;

CREATE VIEW closeout.refunds AS
SELECT refund_id, invoice_id, currency, amount_minor, status,
       charge_id, payment_intent_id, credit_note_id, reason, failure_reason, balance_transaction_id,
       failure_balance_transaction_id, metadata, created_at, first_seen_at, updated_at
FROM closeout_data.refunds;

CREATE VIEW closeout.credit_notes AS
SELECT credit_note_id, invoice_id, currency, amount_minor, status,
       stripe_invoice_id, customer_id, number, pre_payment_amount_minor, post_payment_amount_minor,
       refund_amount_minor, credit_amount_minor, out_of_band_amount_minor, refund_ids, type, reason, memo, metadata,
       created_at, voided_at, first_seen_at, updated_at
FROM closeout_data.credit_notes;

CREATE VIEW closeout.disputes AS
SELECT dispute_id, invoice_id, currency, amount_minor, status,
       charge_id, payment_intent_id, reason, created_at, closed_at, first_seen_at, updated_at
FROM closeout_data.disputes;

CREATE VIEW closeout.stripe_charges AS
SELECT charge_id, payment_intent_id, invoice_id, stripe_invoice_id, invoice_payment_id, customer_id, currency,
       amount_minor, amount_refunded_minor, balance_transaction_id, status, disputed, created_at, first_seen_at,
       updated_at
FROM closeout_data.stripe_charges;

CREATE VIEW closeout.stripe_invoice_snapshots AS
SELECT stripe_invoice_id, customer_id, invoice_id, number, currency, status, total_minor, amount_due_minor,
       amount_paid_minor, amount_remaining_minor, pre_payment_credit_notes_amount_minor,
       post_payment_credit_notes_amount_minor, created_at, metadata, seen_at, first_seen_at, updated_at
FROM closeout_data.stripe_invoice_snapshots;

CREATE VIEW closeout.stripe_invoice_payments AS
SELECT invoice_payment_id, stripe_invoice_id, payment_type, payment_intent_id, charge_id, currency, amount_paid_minor,
       status, paid_at, created_at, first_seen_at, updated_at
FROM closeout_data.stripe_invoice_payments;

CREATE VIEW closeout.stripe_balances AS
SELECT currency, available_minor, pending_minor, observed_at, updated_at FROM closeout_data.stripe_balances;

CREATE VIEW closeout.stripe_cash_cursors AS
SELECT stream, last_created, to_timestamp(last_created) AS last_created_at, state, updated_at
FROM closeout_data.stripe_cash_cursors;
