-- Open reviews for clients that matched ambiguously or only nearly (at most one live review per client).
INSERT INTO closeout_data.accounting_link_reviews (system, company_id, object_kind, closeout_ref, reason, detail,
                                                   candidates)
SELECT %(system)s, %(company_id)s, 'customer', closeout_ref, reason, detail, coalesce(candidates, '[]')
FROM jsonb_to_recordset(%(reviews)s::jsonb) AS x(closeout_ref text, reason text, detail text, candidates jsonb)
ON CONFLICT DO NOTHING
RETURNING review_id, closeout_ref
