-- A free-text field stored after cleaning; seen again in a later run: counted, not repeated.
-- Params: source, entity, source_id, field, change, sync_run_id.
INSERT INTO closeout_data.input_repairs AS r
    (source, entity, source_id, field, change, first_sync_run_id, last_sync_run_id)
VALUES (%(source)s, %(entity)s, %(source_id)s, %(field)s, %(change)s, %(sync_run_id)s, %(sync_run_id)s)
ON CONFLICT (source, entity, coalesce(source_id, ''), field, change) DO UPDATE
    SET last_seen_at = clock_timestamp(),
        last_sync_run_id = EXCLUDED.last_sync_run_id,
        times_seen = r.times_seen + CASE WHEN r.last_sync_run_id IS NOT DISTINCT FROM EXCLUDED.last_sync_run_id
                                         THEN 0 ELSE 1 END
