-- 0036 tracker write-back (issue 16 item 4, DESIGN.md step 11): every write closeout makes to a time tracker
-- (Harvest invoices, their state message, payments and credit notes; Clockify invoiced flags) and every entry it
-- could not mark (a gap), one row each, recorded BEFORE the call (planned), then sent, then done or failed.
--
-- Harvest has no idempotency keys. What keeps a write from being repeated is this row: a row found 'sent' (the
-- worker died between the call and the record) is resolved by looking the object up in Harvest (an invoice by its
-- number, which is closeout's deterministic key; a payment by its notes) before anything is sent again.

CREATE TABLE closeout_data.tracker_writebacks (
    writeback_id        bigserial PRIMARY KEY,
    source              text NOT NULL CHECK (source IN ('harvest', 'clockify', 'toggl')),
    object_kind         text NOT NULL CHECK (object_kind IN ('invoice', 'message', 'payment', 'credit_note',
                                                             'invoiced_flag', 'gap')),
    -- what closeout object the write mirrors: the invoice id, '<invoice>/send', the payment_ref, the credit note
    -- id, '<invoice>' (Clockify flags of the invoice's entries) or '<invoice>/<source>:<entry or expense id>'
    closeout_ref        text NOT NULL CHECK (closeout_ref <> ''),
    invoice_id          text NOT NULL,
    -- deterministic, from business identity: what closeout writes into the tracker to find the object again
    -- (Harvest invoice number, payment notes)
    writeback_key       text NOT NULL,
    external_id         text,
    -- the external id of an earlier mirror that someone deleted in the tracker by hand (re-mirrored once)
    replaced_external_id text,
    remirrors           integer NOT NULL DEFAULT 0 CHECK (remirrors >= 0),
    status              text NOT NULL DEFAULT 'planned'
                        CHECK (status IN ('planned', 'sent', 'done', 'failed', 'gap')),
    -- how the write was made ('import', 'line_items', 'lookup' when a lost answer was found again, ...)
    method              text,
    attempts            integer NOT NULL DEFAULT 0,
    -- summaries only (ids, counts, amounts in minor units); never a token or a header
    request             jsonb NOT NULL DEFAULT '{}',
    response            jsonb,
    reason              text,
    created_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    sent_at             timestamptz,
    completed_at        timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (source, object_kind, closeout_ref)
);
CREATE INDEX tracker_writebacks_invoice ON closeout_data.tracker_writebacks (invoice_id);
CREATE INDEX tracker_writebacks_open ON closeout_data.tracker_writebacks (source, object_kind)
    WHERE status IN ('planned', 'sent');

-- What happened to a write-back over time: a lost answer found again, an invoice deleted in the tracker by hand
-- and mirrored again, a failure. Append-only, for the people who ask "why does Harvest show this".
CREATE TABLE closeout_data.tracker_writeback_events (
    event_id        bigserial PRIMARY KEY,
    writeback_id    bigint NOT NULL REFERENCES closeout_data.tracker_writebacks,
    event           text NOT NULL CHECK (event IN ('found_after_lost_answer', 'deleted_in_tracker', 'remirrored',
                                                   'not_remirrored', 'failed')),
    detail          text NOT NULL,
    at              timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TRIGGER tracker_writeback_events_append_only
    BEFORE UPDATE OR DELETE ON closeout_data.tracker_writeback_events
    FOR EACH ROW EXECUTE FUNCTION closeout_data.refuse_history_rewrite();

-- Harvest OAuth 2.0 tokens live in the accounting token store (0030: one row per connection, refreshed under
-- the row lock, the new refresh token committed before the new access token is used). It was written for two
-- systems; Harvest is the third.
ALTER TABLE closeout_data.accounting_oauth DROP CONSTRAINT accounting_oauth_system_check;
ALTER TABLE closeout_data.accounting_oauth
    ADD CONSTRAINT accounting_oauth_system_check CHECK (system IN ('quickbooks', 'xero', 'harvest'));

-- Public contract (DESIGN.md): source, object_kind, closeout_ref, external_id, status (+ the rest).
CREATE VIEW closeout.tracker_writebacks AS
SELECT w.source, w.object_kind, w.closeout_ref, w.external_id, w.status, w.invoice_id, w.writeback_key,
       w.method, w.reason, w.replaced_external_id, w.remirrors, w.attempts, w.request, w.response,
       w.created_at, w.sent_at, w.completed_at, w.updated_at
FROM closeout_data.tracker_writebacks w;

CREATE VIEW closeout.tracker_writeback_events AS
SELECT w.source, w.object_kind, w.closeout_ref, e.event, e.detail, e.at
FROM closeout_data.tracker_writeback_events e
JOIN closeout_data.tracker_writebacks w USING (writeback_id);
