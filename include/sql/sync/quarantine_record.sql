-- Keep one row per distinct bad payload and reason; seeing it again bumps the counters.
-- Params: source, entity, source_id, field, reason, raw, raw_hash, url, sync_run_id.
INSERT INTO closeout_data.quarantine AS q
    (source, entity, source_id, field, reason, raw, raw_hash, url, first_sync_run_id, last_sync_run_id)
VALUES (%(source)s, %(entity)s, %(source_id)s, %(field)s, %(reason)s, %(raw)s, %(raw_hash)s, %(url)s,
        %(sync_run_id)s, %(sync_run_id)s)
ON CONFLICT (source, entity, raw_hash, reason) DO UPDATE
    SET last_sync_run_id = EXCLUDED.last_sync_run_id,
        last_seen_at = clock_timestamp(),
        times_seen = q.times_seen + CASE WHEN q.last_sync_run_id = EXCLUDED.last_sync_run_id THEN 0 ELSE 1 END,
        resolved_at = NULL
