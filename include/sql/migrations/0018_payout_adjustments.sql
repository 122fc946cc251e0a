-- 0018 payouts follow the money back (issue 13 item 4, invariant 8).
--
-- Work on an invoice that is refunded, credited or whose dispute is lost is not payable, decided on the current
-- state at every plan. What was already paid out on it is a clawback against the payee: a row in
-- closeout_data.payout_adjustments, negative, one per (payout item, cause), never edited. A cause that goes away
-- (a refund that fails or is canceled, a credit note voided) gives a reversing row, positive, once. The payee's
-- next payouts net what is outstanding: each netting is a settlement row naming the new payout item whose
-- transfer it reduced (or the adjustment of the other sign it cancelled), so an adjustment's outstanding amount
-- is its amount less its settlements, and a transfer is never negative: what the new work cannot absorb stays
-- outstanding for the payee's next payouts.
--
-- Payout items gain netted_minor: what netting took from (positive) or added to (negative) the item's transfer;
-- the transfer request carries amount_minor - netted_minor. An item whose whole amount was netted has no
-- transfer: status 'netted', final like 'transferred'.

CREATE TABLE closeout_data.payout_adjustments (
    adjustment_id           text PRIMARY KEY,
    payout_id               text NOT NULL REFERENCES closeout_data.payout_items DEFERRABLE INITIALLY DEFERRED,
    payee_key               text NOT NULL REFERENCES closeout_data.payout_payees,
    invoice_id              text NOT NULL REFERENCES closeout_data.invoices,
    currency                text NOT NULL REFERENCES closeout_data.currencies,
    amount_minor            bigint NOT NULL CHECK (amount_minor <> 0),
    kind                    text NOT NULL CHECK (kind IN ('clawback', 'reversal')),
    reason                  text NOT NULL CHECK (reason IN ('refund', 'credit_note', 'dispute_lost',
                                                            'refund_reversed', 'credit_note_voided',
                                                            'dispute_reversed')),
    cause_kind              text NOT NULL CHECK (cause_kind IN ('refund', 'credit_note', 'dispute')),
    cause_id                text NOT NULL,
    -- the cause's amount in the invoice's currency, and the invoice total it was measured against
    cause_amount_minor      bigint NOT NULL,
    invoice_total_minor     bigint NOT NULL,
    reverses_adjustment_id  text UNIQUE REFERENCES closeout_data.payout_adjustments,
    source_ref              text NOT NULL,
    description             text NOT NULL,
    planned_by              text,
    created_at              timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (payout_id, cause_kind, cause_id, kind),
    CHECK ((kind = 'clawback') = (amount_minor < 0)),
    CHECK ((kind = 'reversal') = (reverses_adjustment_id IS NOT NULL))
);
CREATE INDEX payout_adjustments_payee ON closeout_data.payout_adjustments (payee_key, currency);

CREATE TABLE closeout_data.payout_adjustment_settlements (
    settlement_id         text PRIMARY KEY,
    adjustment_id         text NOT NULL REFERENCES closeout_data.payout_adjustments,
    -- the part of the adjustment settled: the same sign as the adjustment
    amount_minor          bigint NOT NULL CHECK (amount_minor <> 0),
    payout_id             text REFERENCES closeout_data.payout_items DEFERRABLE INITIALLY DEFERRED,
    offset_adjustment_id  text REFERENCES closeout_data.payout_adjustments,
    planned_by            text,
    settled_at            timestamptz NOT NULL DEFAULT clock_timestamp(),
    CHECK ((payout_id IS NULL) <> (offset_adjustment_id IS NULL))
);
CREATE INDEX payout_adjustment_settlements_adjustment ON closeout_data.payout_adjustment_settlements (adjustment_id);

-- Adjustments and settlements are evidence: never changed, never deleted; settlements never exceed their
-- adjustment nor change its sign.
CREATE FUNCTION closeout_data.payout_adjustments_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: record a reversing adjustment instead', TG_TABLE_NAME;
END $$;
CREATE TRIGGER payout_adjustments_append_only BEFORE UPDATE OR DELETE ON closeout_data.payout_adjustments
    FOR EACH ROW EXECUTE FUNCTION closeout_data.payout_adjustments_append_only();
CREATE TRIGGER payout_adjustment_settlements_append_only BEFORE UPDATE OR DELETE
    ON closeout_data.payout_adjustment_settlements
    FOR EACH ROW EXECUTE FUNCTION closeout_data.payout_adjustments_append_only();

CREATE FUNCTION closeout_data.payout_settlement_bounded() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    adj bigint;
    settled bigint;
BEGIN
    SELECT a.amount_minor, (SELECT sum(s.amount_minor) FROM closeout_data.payout_adjustment_settlements s
                            WHERE s.adjustment_id = a.adjustment_id)
    INTO adj, settled
    FROM closeout_data.payout_adjustments a WHERE a.adjustment_id = NEW.adjustment_id;
    IF sign(NEW.amount_minor) <> sign(adj) OR abs(settled) > abs(adj) THEN
        RAISE EXCEPTION 'adjustment % of % cannot be settled by % (settled %)', NEW.adjustment_id, adj,
            NEW.amount_minor, settled USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER payout_settlement_bounded AFTER INSERT ON closeout_data.payout_adjustment_settlements
    FOR EACH ROW EXECUTE FUNCTION closeout_data.payout_settlement_bounded();

-- Items: the netted part of the transfer; 'netted' is an item settled wholly by netting (no transfer).
ALTER TABLE closeout_data.payout_items ADD COLUMN netted_minor bigint NOT NULL DEFAULT 0;
ALTER TABLE closeout_data.payout_items ADD CONSTRAINT payout_items_netted_check
    CHECK (netted_minor <= amount_minor AND (status = 'netted') = (netted_minor = amount_minor));
ALTER TABLE closeout_data.payout_items DROP CONSTRAINT payout_items_status_check;
ALTER TABLE closeout_data.payout_items ADD CONSTRAINT payout_items_status_check
    CHECK (status IN ('pending', 'transferred', 'stopped', 'netted'));

-- The item guard of 0011, plus: a netted item is final, and what was netted is fixed with the request.
CREATE OR REPLACE FUNCTION closeout_data.payout_items_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'payout item % cannot be deleted', OLD.payout_id;
    END IF;
    IF OLD.status = 'transferred' THEN
        RAISE EXCEPTION 'payout item % was transferred (%) and cannot change', OLD.payout_id, OLD.external_id;
    END IF;
    IF OLD.status = 'netted' THEN
        RAISE EXCEPTION 'payout item % was settled by netting clawbacks and cannot change', OLD.payout_id;
    END IF;
    IF OLD.status = 'stopped' AND NEW.status = 'transferred' THEN
        RAISE EXCEPTION 'payout item % is stopped: resolve its exception before it is sent again', OLD.payout_id;
    END IF;
    IF (NEW.payout_id, NEW.batch_id, NEW.payee_key, NEW.invoice_id, NEW.currency, NEW.amount_minor,
        NEW.destination, NEW.request, NEW.netted_minor) IS DISTINCT FROM
       (OLD.payout_id, OLD.batch_id, OLD.payee_key, OLD.invoice_id, OLD.currency, OLD.amount_minor,
        OLD.destination, OLD.request, OLD.netted_minor) THEN
        RAISE EXCEPTION 'payout item % is planned: its amount, payee and key are fixed', OLD.payout_id;
    END IF;
    IF NEW.idempotency_key IS DISTINCT FROM OLD.idempotency_key
       AND NOT (OLD.status = 'stopped' AND NEW.status = 'pending' AND NEW.retries = OLD.retries + 1) THEN
        RAISE EXCEPTION 'payout item % is planned: its amount, payee and key are fixed', OLD.payout_id;
    END IF;
    RETURN NEW;
END $$;

-- Planning exceptions gain: work held while a dispute on its invoice is open, and work not payable because the
-- invoice was refunded, credited or lost in a dispute (detail names the causes).
ALTER TABLE closeout_data.payout_exceptions DROP CONSTRAINT payout_exceptions_reason_check;
ALTER TABLE closeout_data.payout_exceptions ADD CONSTRAINT payout_exceptions_reason_check
    CHECK (reason IN ('no_payee_config', 'non_positive_amount', 'dispute_open', 'not_payable'));
ALTER TABLE closeout_data.payout_exceptions ADD COLUMN detail text;

CREATE OR REPLACE VIEW closeout.payout_exceptions AS
SELECT invoice_id, payee_key, reason, hours, entry_count, first_seen_at, last_seen_at,
       reason AS kind, NULL::bigint AS exception_id, NULL::text AS payout_id, NULL::text AS currency,
       NULL::bigint AS amount_minor, NULL::text AS stripe_code, NULL::timestamptz AS resolved_at,
       NULL::text AS resolved_by, NULL::text AS resolution, NULL::text AS action, detail
FROM closeout_data.payout_exceptions
UNION ALL
SELECT x.invoice_id, x.payee_key, x.reason, i.hours, i.entry_count, x.opened_at, x.opened_at,
       'transfer_refused', x.exception_id, x.payout_id, x.currency, x.amount_minor, x.stripe_code, x.resolved_at,
       x.resolved_by, x.resolution, x.action, NULL::text
FROM closeout_data.payout_transfer_exceptions x
JOIN closeout_data.payout_items i ON i.payout_id = x.payout_id;

-- Items: what netting took (netted_minor) and what the transfer carries (transfer_minor).
CREATE OR REPLACE VIEW closeout.payout_items AS
SELECT payout_id, batch_id, payee_key, currency, amount_minor, status, idempotency_key, external_id,
       invoice_id, hours, cost_rate, entry_count, destination, planned_at, first_sent_at, last_sent_at, attempts,
       last_error, found_by, transferred_at, retries, netted_minor, amount_minor - netted_minor AS transfer_minor
FROM closeout_data.payout_items;

CREATE OR REPLACE VIEW closeout.payout_batches AS
SELECT b.batch_id, b.created_at, b.planned_by, b.item_count, b.size_limit, b.approved_at, b.approved_by,
       count(*) FILTER (WHERE i.status = 'pending')::integer AS pending,
       count(*) FILTER (WHERE i.status = 'transferred')::integer AS transferred,
       CASE WHEN count(*) FILTER (WHERE i.status = 'pending') = 0 THEN
                CASE WHEN count(*) FILTER (WHERE i.status = 'stopped') = 0 THEN 'released'
                     ELSE 'released_with_exceptions' END
            WHEN b.approved_at IS NULL THEN 'awaiting_approval'
            ELSE 'releasing' END AS status,
       count(*) FILTER (WHERE i.status = 'stopped')::integer AS stopped,
       count(*) FILTER (WHERE i.status = 'netted')::integer AS netted
FROM closeout_data.payout_batches b
JOIN closeout_data.payout_items i ON i.batch_id = b.batch_id
GROUP BY b.batch_id;

-- Public contract (DESIGN.md): payee_key, currency, amount_minor (negative for a clawback), reason, source_ref,
-- settled_payout_id (the last payout item whose transfer netted it; NULL while nothing netted it), plus the
-- original item (payout_id), its invoice, and how much is settled and still outstanding.
CREATE VIEW closeout.payout_adjustments AS
SELECT a.adjustment_id, a.payee_key, a.currency, a.amount_minor, a.reason, a.source_ref,
       s.settled_payout_id, a.created_at, a.invoice_id, a.payout_id, a.kind, a.cause_kind, a.cause_id,
       a.cause_amount_minor, a.invoice_total_minor, a.reverses_adjustment_id, a.description,
       coalesce(s.settled_minor, 0)::bigint AS settled_minor,
       (a.amount_minor - coalesce(s.settled_minor, 0))::bigint AS outstanding_minor,
       CASE WHEN coalesce(s.settled_minor, 0) = a.amount_minor THEN 'settled'
            WHEN coalesce(s.settled_minor, 0) = 0 THEN 'outstanding'
            ELSE 'partly_settled' END AS status,
       s.settled_at
FROM closeout_data.payout_adjustments a
LEFT JOIN (
    SELECT x.adjustment_id, sum(x.amount_minor) AS settled_minor, max(x.settled_at) AS settled_at,
           (array_agg(x.payout_id ORDER BY x.settled_at DESC, x.settlement_id DESC)
                FILTER (WHERE x.payout_id IS NOT NULL))[1] AS settled_payout_id
    FROM closeout_data.payout_adjustment_settlements x
    GROUP BY x.adjustment_id
) s ON s.adjustment_id = a.adjustment_id;

CREATE VIEW closeout.payout_adjustment_settlements AS
SELECT x.settlement_id, x.adjustment_id, a.payee_key, a.currency, x.amount_minor, x.payout_id,
       i.batch_id AS settled_batch_id, x.offset_adjustment_id, x.settled_at, x.planned_by
FROM closeout_data.payout_adjustment_settlements x
JOIN closeout_data.payout_adjustments a ON a.adjustment_id = x.adjustment_id
LEFT JOIN closeout_data.payout_items i ON i.payout_id = x.payout_id;

-- What each payee owes back (clawbacks not yet netted) or is owed (reversals not yet paid), per currency:
-- balance_minor < 0 is netted from the payee's next payouts.
CREATE VIEW closeout.outstanding_clawbacks AS
SELECT a.payee_key, p.name AS payee_name, a.currency,
       sum(a.outstanding_minor) FILTER (WHERE a.outstanding_minor < 0)::bigint AS clawed_back_minor,
       coalesce(sum(a.outstanding_minor) FILTER (WHERE a.outstanding_minor > 0), 0)::bigint AS owed_minor,
       sum(a.outstanding_minor)::bigint AS balance_minor,
       count(*)::integer AS adjustments,
       min(a.created_at) AS oldest_at,
       string_agg(a.source_ref, ', ' ORDER BY a.created_at, a.adjustment_id) AS source_refs
FROM closeout.payout_adjustments a
JOIN closeout_data.payout_payees p ON p.payee_key = a.payee_key
WHERE a.outstanding_minor <> 0
GROUP BY a.payee_key, p.name, a.currency;
