-- One webhook event into the inbox, unique per (vendor, event id). A redelivery of an id already there
-- stores nothing new and is counted on the stored row. (xmax = 0) tells an insert from that update.
INSERT INTO closeout_data.webhook_inbox (vendor, event_id, event_type, headers, body, object_key, content_key)
VALUES (%(vendor)s, %(event_id)s, %(event_type)s, %(headers)s, %(body)s, %(object_key)s, %(content_key)s)
ON CONFLICT (vendor, event_id) DO UPDATE
    SET redeliveries = closeout_data.webhook_inbox.redeliveries + 1,
        last_redelivered_at = clock_timestamp()
RETURNING inbox_id, (xmax = 0) AS inserted
