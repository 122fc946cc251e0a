-- Every closeout client with its customer link, live review, configured external id and whether a create was ever
-- recorded in the outbox for it (and the id it answered) (one read per run; the matching happens in Python against the remote listing).
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
       EXISTS (SELECT 1 FROM closeout_data.accounting_api_outbox o
               WHERE o.system = %(system)s AND o.company_id = %(company_id)s
                 AND o.operation = %(create_operation)s AND o.status <> 'failed' AND o.business_ref = 'client:' || c.client_key) AS create_sent,
       -- the id the vendor answered to closeout's own create (QuickBooks records it in the outbox)
       (SELECT o.external_id FROM closeout_data.accounting_api_outbox o
        WHERE o.system = %(system)s AND o.company_id = %(company_id)s AND o.operation = %(create_operation)s
          AND o.status = 'succeeded' AND o.business_ref = 'client:' || c.client_key
        ORDER BY o.outbox_id DESC LIMIT 1)                 AS created_id
FROM closeout_data.billing_clients c
LEFT JOIN closeout_data.accounting_links l
       ON l.system = %(system)s AND l.company_id = %(company_id)s AND l.object_kind = 'customer'
      AND l.closeout_ref = c.client_key
LEFT JOIN closeout_data.accounting_link_reviews r
       ON r.system = %(system)s AND r.company_id = %(company_id)s AND r.object_kind = 'customer'
      AND r.closeout_ref = c.client_key AND r.state <> 'done'
LEFT JOIN closeout_data.accounting_client_refs cr
       ON cr.system = %(system)s AND cr.client_key = c.client_key
WHERE c.client_key <> '*'
ORDER BY c.client_key
