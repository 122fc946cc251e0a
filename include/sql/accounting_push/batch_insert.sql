-- A batch is written with its exact body BEFORE it is sent (committed by the caller). Its business ref is the
-- digest of what it carries plus the number of earlier batches with that digest, so a batch whose key expired and
-- whose objects were not found there goes again under a new key, while an unanswered one keeps its own.
INSERT INTO closeout_data.accounting_push_batches (system, company_id, object_kind, business_ref, items, payload)
SELECT %(system)s, %(company_id)s, %(object_kind)s,
       %(digest)s || ':' || (SELECT count(*) FROM closeout_data.accounting_push_batches b
                              WHERE b.system = %(system)s AND b.company_id = %(company_id)s
                                AND b.business_ref LIKE %(digest)s || ':%%'),
       %(items)s::jsonb, %(payload)s::jsonb
RETURNING batch_id, business_ref
