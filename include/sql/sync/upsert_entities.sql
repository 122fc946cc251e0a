-- Upsert clients, projects, tasks or users as the tracker describes them now.
-- Params: source, kind, sync_run_id, rows (jsonb array of {source_id, name, currency, is_active, updated_at, payload}).
INSERT INTO closeout_data.tracker_entities AS e
    (source, kind, source_id, name, currency, is_active, payload, source_updated_at, last_sync_run_id)
SELECT %(source)s, %(kind)s, r->>'source_id', r->>'name', r->>'currency', (r->>'is_active')::boolean,
       r->'payload', (r->>'updated_at')::timestamptz, %(sync_run_id)s
FROM jsonb_array_elements(%(rows)s::jsonb) AS r
ON CONFLICT (source, kind, source_id) DO UPDATE
    SET name = EXCLUDED.name, currency = EXCLUDED.currency, is_active = EXCLUDED.is_active,
        payload = EXCLUDED.payload, source_updated_at = EXCLUDED.source_updated_at,
        last_sync_run_id = EXCLUDED.last_sync_run_id
