-- Keep one row per distinct refused event and reason; seen again (redelivered, listed again): counted.
-- Params: vendor, event_id, event_type, received_via, field, reason, raw, raw_hash, inbox_id.
INSERT INTO closeout_data.event_quarantine AS q
    (vendor, event_id, event_type, received_via, field, reason, raw, raw_hash, inbox_id)
VALUES (%(vendor)s, %(event_id)s, %(event_type)s, %(received_via)s, %(field)s, %(reason)s, %(raw)s, %(raw_hash)s,
        %(inbox_id)s)
ON CONFLICT (vendor, raw_hash, reason) DO UPDATE
    SET last_seen_at = clock_timestamp(),
        times_seen = q.times_seen + 1,
        inbox_id = coalesce(q.inbox_id, EXCLUDED.inbox_id)
