-- Remember which expense ids the deletion sweep has seen in the tracker. Params: sync_run_id, ids (text[]).
INSERT INTO closeout_data.expense_sweep_seen (sync_run_id, source_id)
SELECT %(sync_run_id)s, id FROM unnest(%(ids)s::text[]) AS id
ON CONFLICT DO NOTHING
