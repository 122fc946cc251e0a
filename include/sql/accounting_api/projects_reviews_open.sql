-- Open reviews for projects whose sub-customer matched ambiguously or only nearly, or whose create was refused (at
-- most one live review per project); finance resolves them as customers' (python -m closeout.accounting links).
INSERT INTO closeout_data.accounting_link_reviews (system, company_id, object_kind, closeout_ref, reason, detail,
                                                   candidates)
SELECT %(system)s, %(company_id)s, 'project', closeout_ref, reason, detail, coalesce(candidates, '[]')
FROM jsonb_to_recordset(%(reviews)s::jsonb) AS x(closeout_ref text, reason text, detail text, candidates jsonb)
ON CONFLICT DO NOTHING
RETURNING review_id, closeout_ref
