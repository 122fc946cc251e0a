-- 0023 webhook identity: recognise a replayed event by what it says, not only by the id it comes with.
--   * object_key / content_key: for vendors whose webhooks carry no event id (Clockify), the object the
--     event is about and a hash of its type and content; a delivery whose content equals the latest event
--     stored for the same object is a replay, whatever delivery id it carries;
--   * redeliveries / last_redelivered_at: every recognised redelivery or replay of a stored event is
--     counted on it, so a vendor retrying (or someone replaying) shows in the inbox without new rows.

ALTER TABLE closeout_data.webhook_inbox
    ADD COLUMN object_key          text,
    ADD COLUMN content_key         text,
    ADD COLUMN redeliveries        integer NOT NULL DEFAULT 0,
    ADD COLUMN last_redelivered_at timestamptz;

CREATE INDEX webhook_inbox_latest_per_object
    ON closeout_data.webhook_inbox (vendor, object_key, inbox_id DESC)
    WHERE object_key IS NOT NULL;
