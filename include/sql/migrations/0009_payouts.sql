-- 0009 payouts: contractor payouts for work on paid invoices, in bounded batches, one Stripe transfer each.
--
-- A payout item is one payee's cost for their work on one paid invoice, in the payee's currency: unique per
-- (payee, invoice, currency), so the same work is never paid twice (invariant 6). Its amount is fixed when it
-- is planned (hours of the invoice's current entry rows x the payee's cost rate, rounded once, half-up). The
-- item row is its own outbox: the idempotency key and the request are recorded (committed) before the
-- transfer call, the transfer id after it.

CREATE TABLE closeout_data.payout_payees (
    payee_key     text PRIMARY KEY,
    cost_rate     numeric NOT NULL CHECK (cost_rate >= 0),
    currency      text NOT NULL REFERENCES closeout_data.currencies,
    account_id    text NOT NULL CHECK (account_id ~ '^acct_[A-Za-z0-9_]+$'),
    name          text,
    active        boolean NOT NULL DEFAULT true,
    updated_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE closeout_data.payout_batches (
    batch_id      text PRIMARY KEY,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    planned_by    text,
    item_count    integer NOT NULL CHECK (item_count BETWEEN 1 AND 15000),
    size_limit    integer NOT NULL CHECK (size_limit BETWEEN 1 AND 15000),
    approved_at   timestamptz,
    approved_by   text,
    CHECK ((approved_at IS NULL) = (approved_by IS NULL))
);

CREATE TABLE closeout_data.payout_items (
    payout_id         text PRIMARY KEY,
    batch_id          text NOT NULL REFERENCES closeout_data.payout_batches,
    payee_key         text NOT NULL REFERENCES closeout_data.payout_payees,
    invoice_id        text NOT NULL REFERENCES closeout_data.invoices,
    currency          text NOT NULL REFERENCES closeout_data.currencies,
    hours             numeric NOT NULL CHECK (hours > 0),
    cost_rate         numeric NOT NULL,
    amount_minor      bigint NOT NULL CHECK (amount_minor > 0),
    entry_count       integer NOT NULL,
    destination       text NOT NULL,
    status            text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'transferred')),
    idempotency_key   text NOT NULL UNIQUE CHECK (length(idempotency_key) <= 255),
    request           jsonb NOT NULL,
    planned_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    first_sent_at     timestamptz,
    last_sent_at      timestamptz,
    attempts          integer NOT NULL DEFAULT 0,
    last_error        text,
    external_id       text UNIQUE,
    found_by          text CHECK (found_by IN ('create', 'replay', 'lookup')),
    transferred_at    timestamptz,
    UNIQUE (payee_key, invoice_id, currency),
    CHECK ((status = 'transferred') = (external_id IS NOT NULL))
);
CREATE INDEX payout_items_pending ON closeout_data.payout_items (batch_id) WHERE status = 'pending';

-- Planned items are evidence: never deleted; once transferred, never changed.
CREATE FUNCTION closeout_data.payout_items_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'payout item % cannot be deleted', OLD.payout_id;
    END IF;
    IF OLD.status = 'transferred' THEN
        RAISE EXCEPTION 'payout item % was transferred (%) and cannot change', OLD.payout_id, OLD.external_id;
    END IF;
    IF (NEW.payout_id, NEW.batch_id, NEW.payee_key, NEW.invoice_id, NEW.currency, NEW.amount_minor,
        NEW.destination, NEW.idempotency_key, NEW.request) IS DISTINCT FROM
       (OLD.payout_id, OLD.batch_id, OLD.payee_key, OLD.invoice_id, OLD.currency, OLD.amount_minor,
        OLD.destination, OLD.idempotency_key, OLD.request) THEN
        RAISE EXCEPTION 'payout item % is planned: its amount, payee and key are fixed', OLD.payout_id;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER payout_items_guard BEFORE UPDATE OR DELETE ON closeout_data.payout_items
    FOR EACH ROW EXECUTE FUNCTION closeout_data.payout_items_guard();

-- Every run of the payouts DAG's steps, refusals of the gate included (with the holds and reasons).
CREATE TABLE closeout_data.payout_runs (
    payout_run_id   bigserial PRIMARY KEY,
    airflow_run_id  text,
    step            text NOT NULL,
    started_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at     timestamptz,
    status          text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'success', 'failed', 'refused')),
    counts          jsonb NOT NULL DEFAULT '{}',
    reason          text
);

-- Work on paid invoices that is not paid out, and why: no payee configuration for the user, or a
-- non-positive amount (an adjustment invoice that takes hours back). Recomputed on every plan.
CREATE TABLE closeout_data.payout_exceptions (
    invoice_id    text NOT NULL,
    payee_key     text NOT NULL,
    reason        text NOT NULL CHECK (reason IN ('no_payee_config', 'non_positive_amount')),
    hours         numeric NOT NULL,
    entry_count   integer NOT NULL,
    first_seen_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_seen_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (invoice_id, payee_key, reason)
);

-- Public contract (DESIGN.md): payout_id, batch_id, payee_key, currency, amount_minor, status,
-- idempotency_key, external_id.
CREATE VIEW closeout.payout_items AS
SELECT payout_id, batch_id, payee_key, currency, amount_minor, status, idempotency_key, external_id,
       invoice_id, hours, cost_rate, entry_count, destination, planned_at, first_sent_at, last_sent_at, attempts,
       last_error, found_by, transferred_at
FROM closeout_data.payout_items;

CREATE VIEW closeout.payout_batches AS
SELECT b.batch_id, b.created_at, b.planned_by, b.item_count, b.size_limit, b.approved_at, b.approved_by,
       count(*) FILTER (WHERE i.status = 'pending')::integer AS pending,
       count(*) FILTER (WHERE i.status = 'transferred')::integer AS transferred,
       CASE WHEN count(*) FILTER (WHERE i.status = 'pending') = 0 THEN 'released'
            WHEN b.approved_at IS NULL THEN 'awaiting_approval'
            ELSE 'releasing' END AS status
FROM closeout_data.payout_batches b
JOIN closeout_data.payout_items i ON i.batch_id = b.batch_id
GROUP BY b.batch_id;

CREATE VIEW closeout.payout_exceptions AS
SELECT invoice_id, payee_key, reason, hours, entry_count, first_seen_at, last_seen_at
FROM closeout_data.payout_exceptions;

CREATE VIEW closeout.payout_payees AS
SELECT payee_key, cost_rate, currency, account_id, name, active, updated_at FROM closeout_data.payout_payees;

CREATE VIEW closeout.payout_runs AS
SELECT payout_run_id, airflow_run_id, step, started_at, finished_at, status, counts, reason
FROM closeout_data.payout_runs;
