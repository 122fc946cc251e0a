-- One 'gap' row per billed item the tracker still shows unbilled, with the reason (set-based; kept once).
INSERT INTO closeout_data.tracker_writebacks (source, object_kind, closeout_ref, invoice_id, writeback_key, status,
                                             reason, request, completed_at)
SELECT %(source)s, 'gap', g.closeout_ref, %(invoice_id)s, g.closeout_ref, 'gap', %(reason)s,
       jsonb_build_object('item_kind', g.item_kind, 'source_id', g.source_id), clock_timestamp()
FROM unnest(%(refs)s::text[], %(kinds)s::text[], %(ids)s::text[]) AS g(closeout_ref, item_kind, source_id)
ON CONFLICT (source, object_kind, closeout_ref) DO NOTHING
