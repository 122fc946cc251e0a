-- 0011 payouts in the books, and transfers Stripe refuses.
--
-- 1. Two journal kinds for contractor payouts (posted by include/sql/ledger/70_* and 80_*):
--      payout_accrual   payout_id  a payout item planned: the cost of paid work is owed to the contractor
--                                  (debit contractor_costs, credit payouts_payable)
--      payout_transfer  payout_id  its Stripe transfer made: the debt is paid out of the Stripe balance
--                                  (debit payouts_payable, credit cash_clearing)
--    Neither touches the receivable, so invariant 5 (closeout.receivable_by_client) is unaffected.
-- 2. A payout item Stripe refuses for good (a 4xx that trying again cannot fix: insufficient balance, a closed
--    or incapable destination account, an invalid request) is stopped ('stopped'), not left pending forever:
--    the release goes on with the rest of the batch and opens a transfer exception for a person to act on.
--    Resolving it is a recorded action (who, when, why, and whether the item is sent again).

ALTER TABLE closeout_data.journals DROP CONSTRAINT journals_kind_check;
ALTER TABLE closeout_data.journals ADD CONSTRAINT journals_kind_check
    CHECK (kind IN ('invoice', 'payment', 'refund', 'dispute', 'writeoff', 'writeoff_reversal', 'void',
                    'payout_accrual', 'payout_transfer'));

ALTER TABLE closeout_data.payout_items DROP CONSTRAINT payout_items_status_check;
ALTER TABLE closeout_data.payout_items ADD CONSTRAINT payout_items_status_check
    CHECK (status IN ('pending', 'transferred', 'stopped'));
-- How many times a refusal was resolved with "send again": each retry sends under a key of its own
-- (Stripe replays a refusal saved under the old key for 24 h), derived from the item's first key.
ALTER TABLE closeout_data.payout_items ADD COLUMN retries integer NOT NULL DEFAULT 0;

-- The item guard of 0009, plus: the idempotency key may change only when a stopped item is sent again (a
-- refused call made no transfer, so a new key cannot pay twice), and a stopped item is never transferred
-- without passing through pending.
CREATE OR REPLACE FUNCTION closeout_data.payout_items_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'payout item % cannot be deleted', OLD.payout_id;
    END IF;
    IF OLD.status = 'transferred' THEN
        RAISE EXCEPTION 'payout item % was transferred (%) and cannot change', OLD.payout_id, OLD.external_id;
    END IF;
    IF OLD.status = 'stopped' AND NEW.status = 'transferred' THEN
        RAISE EXCEPTION 'payout item % is stopped: resolve its exception before it is sent again', OLD.payout_id;
    END IF;
    IF (NEW.payout_id, NEW.batch_id, NEW.payee_key, NEW.invoice_id, NEW.currency, NEW.amount_minor,
        NEW.destination, NEW.request) IS DISTINCT FROM
       (OLD.payout_id, OLD.batch_id, OLD.payee_key, OLD.invoice_id, OLD.currency, OLD.amount_minor,
        OLD.destination, OLD.request) THEN
        RAISE EXCEPTION 'payout item % is planned: its amount, payee and key are fixed', OLD.payout_id;
    END IF;
    IF NEW.idempotency_key IS DISTINCT FROM OLD.idempotency_key
       AND NOT (OLD.status = 'stopped' AND NEW.status = 'pending' AND NEW.retries = OLD.retries + 1) THEN
        RAISE EXCEPTION 'payout item % is planned: its amount, payee and key are fixed', OLD.payout_id;
    END IF;
    RETURN NEW;
END $$;

-- Transfers Stripe refused for good: one open exception per item at a time; resolutions are kept.
CREATE TABLE closeout_data.payout_transfer_exceptions (
    exception_id    bigserial PRIMARY KEY,
    payout_id       text NOT NULL REFERENCES closeout_data.payout_items,
    batch_id        text NOT NULL,
    invoice_id      text NOT NULL,
    payee_key       text NOT NULL,
    destination     text NOT NULL,
    currency        text NOT NULL,
    amount_minor    bigint NOT NULL,
    idempotency_key text NOT NULL,
    stripe_status   integer,
    stripe_code     text,
    message         text NOT NULL,
    reason          text NOT NULL,
    opened_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    resolved_at     timestamptz,
    resolved_by     text,
    resolution      text,
    action          text CHECK (action IN ('retry', 'abandon')),
    CHECK ((resolved_at IS NULL) = (resolved_by IS NULL) AND (resolved_at IS NULL) = (action IS NULL))
);
CREATE UNIQUE INDEX payout_transfer_exceptions_one_open
    ON closeout_data.payout_transfer_exceptions (payout_id) WHERE resolved_at IS NULL;

-- closeout.payout_exceptions (0009) gains the transfer refusals, with columns appended: kind (the planning
-- reasons, or 'transfer_refused'), and for refusals the item, amount, Stripe's code and the resolution.
-- For a refusal, reason is a sentence naming the item, payee, amount and Stripe's error code.
CREATE OR REPLACE VIEW closeout.payout_exceptions AS
SELECT invoice_id, payee_key, reason, hours, entry_count, first_seen_at, last_seen_at,
       reason AS kind, NULL::bigint AS exception_id, NULL::text AS payout_id, NULL::text AS currency,
       NULL::bigint AS amount_minor, NULL::text AS stripe_code, NULL::timestamptz AS resolved_at,
       NULL::text AS resolved_by, NULL::text AS resolution, NULL::text AS action
FROM closeout_data.payout_exceptions
UNION ALL
SELECT x.invoice_id, x.payee_key, x.reason, i.hours, i.entry_count, x.opened_at, x.opened_at,
       'transfer_refused', x.exception_id, x.payout_id, x.currency, x.amount_minor, x.stripe_code, x.resolved_at,
       x.resolved_by, x.resolution, x.action
FROM closeout_data.payout_transfer_exceptions x
JOIN closeout_data.payout_items i ON i.payout_id = x.payout_id;

CREATE OR REPLACE VIEW closeout.payout_items AS
SELECT payout_id, batch_id, payee_key, currency, amount_minor, status, idempotency_key, external_id,
       invoice_id, hours, cost_rate, entry_count, destination, planned_at, first_sent_at, last_sent_at, attempts,
       last_error, found_by, transferred_at, retries
FROM closeout_data.payout_items;

-- A batch with a stopped item and nothing pending is 'released_with_exceptions', not 'released'.
CREATE OR REPLACE VIEW closeout.payout_batches AS
SELECT b.batch_id, b.created_at, b.planned_by, b.item_count, b.size_limit, b.approved_at, b.approved_by,
       count(*) FILTER (WHERE i.status = 'pending')::integer AS pending,
       count(*) FILTER (WHERE i.status = 'transferred')::integer AS transferred,
       CASE WHEN count(*) FILTER (WHERE i.status = 'pending') = 0 THEN
                CASE WHEN count(*) FILTER (WHERE i.status = 'stopped') = 0 THEN 'released'
                     ELSE 'released_with_exceptions' END
            WHEN b.approved_at IS NULL THEN 'awaiting_approval'
            ELSE 'releasing' END AS status,
       count(*) FILTER (WHERE i.status = 'stopped')::integer AS stopped
FROM closeout_data.payout_batches b
JOIN closeout_data.payout_items i ON i.batch_id = b.batch_id
GROUP BY b.batch_id;
