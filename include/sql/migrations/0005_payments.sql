-- Payments: publishing frozen drafts to Stripe exactly once, and following them through Stripe's events.
--
-- Invariants enforced here rather than only in tests:
--   * one outbox row per idempotency key, written and committed before the Stripe call it stands for;
--     a key always carries the request first recorded with it, so a retry can only replay it;
--   * one Stripe invoice per closeout invoice and one closeout invoice per Stripe invoice;
--   * one Stripe customer per client;
--   * one stored event per Stripe event id, whatever way it arrived (webhook or /v1/events backfill);
--   * one payment-history row per Stripe payment, refund step or dispute;
--   * an invoice's status only moves forward: publishing -> open -> uncollectible -> paid | void
--     (open may go straight to paid or void); paid and void are final.

CREATE TABLE closeout_data.stripe_customers (
    client_key          text PRIMARY KEY,
    stripe_customer_id  text NOT NULL UNIQUE,
    found_by            text NOT NULL CHECK (found_by IN ('created', 'metadata_lookup')),
    recorded_at         timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Every mutating Stripe call. `created_at` is when the key was first recorded: Stripe keeps a key about
-- 24 h, so an older pending row is resolved by a metadata lookup before anything is created again.
CREATE TABLE closeout_data.stripe_outbox (
    idempotency_key   text PRIMARY KEY CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    operation         text NOT NULL
                      CHECK (operation IN ('customer.create', 'invoice.create', 'invoice.add_lines', 'invoice.finalize')),
    client_key        text NOT NULL,
    invoice_id        text REFERENCES closeout_data.invoices,
    invoice_version   integer,
    part              integer NOT NULL DEFAULT 0,
    -- the request as first recorded: a retry sends exactly this, even if our data changed since
    request           jsonb NOT NULL,
    status            text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
    attempts          integer NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_attempt_at   timestamptz,
    completed_at      timestamptz,
    resolved_by       text CHECK (resolved_by IN ('response', 'replay', 'metadata_lookup')),
    stripe_object_id  text,
    http_status       integer,
    last_error        text,
    CHECK ((status = 'pending') = (completed_at IS NULL))
);
CREATE INDEX stripe_outbox_pending ON closeout_data.stripe_outbox (created_at) WHERE status = 'pending';
CREATE INDEX stripe_outbox_invoice ON closeout_data.stripe_outbox (invoice_id);

-- How far each frozen invoice has got on its way to Stripe. A stopped publication (a total that differs,
-- an amount Stripe cannot represent, a request Stripe refuses) waits for a person; see payment_exceptions.
CREATE TABLE closeout_data.stripe_publications (
    invoice_id          text PRIMARY KEY REFERENCES closeout_data.invoices,
    version             integer NOT NULL,
    client_key          text NOT NULL,
    currency            text NOT NULL,
    total_minor         bigint NOT NULL,
    line_count          integer NOT NULL,
    state               text NOT NULL DEFAULT 'pending'
                        CHECK (state IN ('pending', 'created', 'lines_added', 'finalized', 'stopped')),
    stripe_customer_id  text,
    stripe_invoice_id   text UNIQUE,
    lines_per_part      integer NOT NULL CHECK (lines_per_part BETWEEN 1 AND 250),
    parts_total         integer NOT NULL,
    parts_added         integer NOT NULL DEFAULT 0,
    stripe_total_minor  bigint,
    stop_reason         text,
    started_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    finalized_at        timestamptz,
    due_date            date
);
CREATE INDEX stripe_publications_open ON closeout_data.stripe_publications (state) WHERE state <> 'finalized';
CREATE UNIQUE INDEX invoices_one_stripe_invoice ON closeout_data.invoices (stripe_invoice_id)
    WHERE stripe_invoice_id IS NOT NULL;

-- Anything that stops an invoice on its way to or through Stripe, for a person to look at. One open
-- exception per invoice and kind; resolving it is recorded, never deleted.
CREATE TABLE closeout_data.payment_exceptions (
    exception_id        bigserial PRIMARY KEY,
    invoice_id          text,
    stripe_object_id    text,
    kind                text NOT NULL,
    message             text NOT NULL,
    our_total_minor     bigint,
    stripe_total_minor  bigint,
    currency            text,
    detail              jsonb NOT NULL DEFAULT '{}',
    opened_at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    resolved_at         timestamptz,
    resolved_by         text,
    resolution          text
);
CREATE UNIQUE INDEX payment_exceptions_one_open
    ON closeout_data.payment_exceptions (coalesce(invoice_id, stripe_object_id), kind) WHERE resolved_at IS NULL;

-- Every Stripe event seen, once, with what processing made of it. Parked events are looked at again on
-- every run (what they refer to may be recorded later); nothing is deleted.
CREATE TABLE closeout_data.stripe_events (
    event_id        text PRIMARY KEY,
    event_type      text NOT NULL,
    created_at      timestamptz NOT NULL,
    object_type     text,
    object_id       text,
    body            jsonb NOT NULL,
    received_via    text NOT NULL CHECK (received_via IN ('webhook', 'backfill')),
    received_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    processed_at    timestamptz,
    outcome         text CHECK (outcome IN ('applied', 'no_change', 'stale', 'ignored', 'parked')),
    reason          text,
    invoice_id      text,
    attempts        integer NOT NULL DEFAULT 0
);
CREATE INDEX stripe_events_to_process ON closeout_data.stripe_events (created_at, event_id)
    WHERE processed_at IS NULL OR outcome = 'parked';
CREATE INDEX stripe_events_object ON closeout_data.stripe_events (object_id);

-- Where the /v1/events backfill resumes (one row per Stripe account closeout publishes to).
CREATE TABLE closeout_data.stripe_event_cursor (
    account         text PRIMARY KEY,
    last_created    bigint NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- One row per run of each payments task, with the requests it made: the audit of the API usage.
CREATE TABLE closeout_data.payment_runs (
    payment_run_id  bigserial PRIMARY KEY,
    airflow_run_id  text,
    step            text NOT NULL,
    started_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at     timestamptz,
    status          text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'success', 'failed')),
    requests        integer NOT NULL DEFAULT 0,
    counts          jsonb NOT NULL DEFAULT '{}',
    error           text
);

-- Money that moved on a published invoice, as Stripe confirmed it in events.
CREATE TABLE closeout_data.invoice_payments (
    payment_ref       text PRIMARY KEY,
    invoice_id        text NOT NULL REFERENCES closeout_data.invoices,
    kind              text NOT NULL CHECK (kind IN ('payment', 'refund', 'dispute', 'payment_failed')),
    amount_minor      bigint NOT NULL CHECK (amount_minor >= 0),
    currency          text NOT NULL,
    occurred_at       timestamptz NOT NULL,
    stripe_object_id  text,
    charge_id         text,
    event_id          text NOT NULL,
    recorded_at       timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX invoice_payments_invoice ON closeout_data.invoice_payments (invoice_id);
CREATE INDEX invoice_payments_charge ON closeout_data.invoice_payments (charge_id) WHERE charge_id IS NOT NULL;

-- Every status or amount-paid change of a published invoice, with the event (or publish step) behind it.
CREATE TABLE closeout_data.invoice_status_history (
    history_id          bigserial PRIMARY KEY,
    invoice_id          text NOT NULL REFERENCES closeout_data.invoices,
    from_status         text NOT NULL,
    to_status           text NOT NULL,
    amount_paid_before  bigint NOT NULL,
    amount_paid_after   bigint NOT NULL,
    via                 text NOT NULL CHECK (via IN ('publish', 'event', 'refetch')),
    event_id            text,
    recorded_at         timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX invoice_status_history_invoice ON closeout_data.invoice_status_history (invoice_id);

-- Status only moves forward, whatever order events arrive in: the database refuses a step back.
CREATE FUNCTION closeout_data.invoice_status_rank(status text) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE status WHEN 'draft' THEN 0 WHEN 'publishing' THEN 1 WHEN 'open' THEN 2
                       WHEN 'uncollectible' THEN 3 WHEN 'paid' THEN 4 WHEN 'void' THEN 4 END
$$;

CREATE FUNCTION closeout_data.guard_invoice_status() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status AND OLD.status IN ('publishing', 'open', 'uncollectible', 'paid')
       AND (OLD.status IN ('paid', 'void')
            OR closeout_data.invoice_status_rank(NEW.status) <= closeout_data.invoice_status_rank(OLD.status))
       AND NOT (OLD.status IN ('publishing', 'open', 'uncollectible') AND NEW.status = 'void') THEN
        RAISE EXCEPTION 'invoice %: status cannot go from % to %', OLD.invoice_id, OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.amount_paid_minor < OLD.amount_paid_minor THEN
        RAISE EXCEPTION 'invoice %: amount paid cannot go down (% -> %)', OLD.invoice_id,
            OLD.amount_paid_minor, NEW.amount_paid_minor USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER invoices_status_forward BEFORE UPDATE OF status, amount_paid_minor ON closeout_data.invoices
    FOR EACH ROW EXECUTE FUNCTION closeout_data.guard_invoice_status();

-- ---------------------------------------------------------------------------------------------
-- Views for finance and operations
-- ---------------------------------------------------------------------------------------------
CREATE VIEW closeout.stripe_publications AS
SELECT p.invoice_id, p.version, p.client_key, p.currency, p.total_minor, p.stripe_total_minor, p.line_count,
       p.parts_total, p.parts_added, p.state, p.stripe_customer_id, p.stripe_invoice_id, p.stop_reason, p.started_at, p.updated_at,
       p.finalized_at, p.due_date
FROM closeout_data.stripe_publications p;

CREATE VIEW closeout.stripe_outbox AS
SELECT idempotency_key, operation, client_key, invoice_id, invoice_version, part, status, attempts, created_at,
       last_attempt_at, completed_at, resolved_by, stripe_object_id, http_status, last_error
FROM closeout_data.stripe_outbox;

CREATE VIEW closeout.payment_exceptions AS
SELECT exception_id, invoice_id, stripe_object_id, kind, message, our_total_minor, stripe_total_minor, currency,
       detail, opened_at, resolved_at, resolved_by, resolution
FROM closeout_data.payment_exceptions;

CREATE VIEW closeout.stripe_events AS
SELECT event_id, event_type, created_at, object_type, object_id, received_via, received_at, processed_at,
       outcome, reason, invoice_id, attempts
FROM closeout_data.stripe_events;

CREATE VIEW closeout.parked_events AS
SELECT event_id, event_type, created_at, object_type, object_id, reason, received_via, received_at, attempts
FROM closeout_data.stripe_events WHERE outcome = 'parked';

CREATE VIEW closeout.invoice_payments AS
SELECT payment_ref, invoice_id, kind, amount_minor, currency, occurred_at, stripe_object_id, charge_id, event_id,
       recorded_at
FROM closeout_data.invoice_payments;

CREATE VIEW closeout.invoice_status_history AS
SELECT history_id, invoice_id, from_status, to_status, amount_paid_before, amount_paid_after, via, event_id,
       recorded_at
FROM closeout_data.invoice_status_history;

CREATE VIEW closeout.payment_runs AS
SELECT payment_run_id, airflow_run_id, step, started_at, finished_at, status, requests, counts, error
FROM closeout_data.payment_runs;
