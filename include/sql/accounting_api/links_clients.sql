-- Every closeout client with its customer link, live review, configured external id and whether closeout ever sent
-- a create for it (one read per run; the matching happens in Python against the remote listing).
--
-- Creates go in batches whose outbox business ref is 'clients:' followed by the members as a JSON array (each with
-- its "key"), so the members of every batch sent are read here set-based, once, not per client.
WITH sent_batches AS (
    SELECT o.business_ref,
           extract(epoch FROM clock_timestamp() - o.created_at)            AS age_seconds,
           o.outbox_id
    FROM closeout_data.accounting_api_outbox o
    WHERE o.system = %(system)s AND o.company_id = %(company_id)s AND o.operation = %(create_operation)s
      AND o.status <> 'failed' AND o.business_ref LIKE 'clients:%%'
), batch_members AS (
    -- the latest batch each client was sent in
    SELECT DISTINCT ON (m.member ->> 'key') m.member ->> 'key' AS client_key, b.business_ref, b.age_seconds
    FROM sent_batches b
    CROSS JOIN LATERAL jsonb_array_elements(substr(b.business_ref, 9)::jsonb) AS m(member)
    ORDER BY m.member ->> 'key', b.outbox_id DESC
), single_creates AS (
    -- creates sent one per call before batching ('client:<key>'); the id QuickBooks answered is in the outbox
    SELECT DISTINCT ON (o.business_ref) substr(o.business_ref, 8) AS client_key,
           CASE WHEN o.status = 'succeeded' THEN o.external_id END AS external_id
    FROM closeout_data.accounting_api_outbox o
    WHERE o.system = %(system)s AND o.company_id = %(company_id)s
      AND o.operation IN ('customer.create', 'contacts.create') AND o.status <> 'failed'
      AND o.business_ref LIKE 'client:%%'
    ORDER BY o.business_ref, (o.status = 'succeeded') DESC, o.outbox_id DESC
)
SELECT c.client_key,
       coalesce(nullif(btrim(c.name), ''), c.client_key)   AS name,
       nullif(btrim(c.email), '')                          AS email,
       c.currency,
       l.external_id,
       l.remote_version,
       l.pushed_sha256,
       r.review_id,
       r.state                                             AS review_state,
       cr.external_id                                      AS configured_id,
       (s.client_key IS NOT NULL OR bm.client_key IS NOT NULL) AS create_sent,
       s.external_id                                       AS created_id,
       bm.business_ref                                     AS sent_batch_ref,
       bm.age_seconds                                      AS sent_batch_age
FROM closeout_data.billing_clients c
LEFT JOIN closeout_data.accounting_links l
       ON l.system = %(system)s AND l.company_id = %(company_id)s AND l.object_kind = 'customer'
      AND l.closeout_ref = c.client_key
LEFT JOIN closeout_data.accounting_link_reviews r
       ON r.system = %(system)s AND r.company_id = %(company_id)s AND r.object_kind = 'customer'
      AND r.closeout_ref = c.client_key AND r.state <> 'done'
LEFT JOIN closeout_data.accounting_client_refs cr
       ON cr.system = %(system)s AND cr.client_key = c.client_key
LEFT JOIN single_creates s ON s.client_key = c.client_key
LEFT JOIN batch_members bm ON bm.client_key = c.client_key
WHERE c.client_key <> '*'
ORDER BY c.client_key
