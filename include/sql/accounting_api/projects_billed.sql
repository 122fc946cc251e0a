-- Every (client, project) billed on a published invoice (open, paid or uncollectible, as the push sends them) of a
-- client whose customer is linked in %(system)s / %(company_id)s, with the parent customer, the project's
-- sub-customer link and live review, and the names a sub-customer is given (one read per run; matching in Python).
-- The project's ref is '<client_key>/<project_key>': a project billed for two clients is two sub-customers.
WITH billed AS (
    SELECT DISTINCT i.client_key, l.project_key
    FROM closeout.invoices i
    JOIN closeout.invoice_lines l ON l.invoice_id = i.invoice_id
    WHERE i.status IN ('open', 'paid', 'uncollectible') AND i.stripe_number IS NOT NULL
      AND l.project_key IS NOT NULL AND l.project_key <> ''
), names AS (
    -- the tracker's project name, keyed as the invoice lines are (through the identity map)
    SELECT coalesce(m.key, t.source || ':' || t.source_id) AS key, min(t.name) AS name
    FROM closeout_data.tracker_entities t
    LEFT JOIN closeout_data.identity_map m ON m.source = t.source AND m.kind = t.kind AND m.source_id = t.source_id
    WHERE t.kind = 'project' AND t.name IS NOT NULL AND btrim(t.name) <> ''
    GROUP BY 1
)
SELECT b.client_key || '/' || b.project_key                    AS ref,
       b.client_key,
       b.project_key,
       coalesce(btrim(n.name), b.project_key)                  AS project_name,
       coalesce(nullif(btrim(c.name), ''), b.client_key)       AS client_name,
       c.currency,
       parent.external_id                                      AS parent_id,
       l.external_id,
       r.review_id,
       r.state                                                 AS review_state
FROM billed b
JOIN closeout_data.accounting_links parent
  ON parent.system = %(system)s AND parent.company_id = %(company_id)s AND parent.object_kind = 'customer'
 AND parent.closeout_ref = b.client_key
LEFT JOIN closeout_data.billing_clients c ON c.client_key = b.client_key
LEFT JOIN names n ON n.key = b.project_key
LEFT JOIN closeout_data.accounting_links l
       ON l.system = %(system)s AND l.company_id = %(company_id)s AND l.object_kind = 'project'
      AND l.closeout_ref = b.client_key || '/' || b.project_key
LEFT JOIN closeout_data.accounting_link_reviews r
       ON r.system = %(system)s AND r.company_id = %(company_id)s AND r.object_kind = 'project'
      AND r.closeout_ref = b.client_key || '/' || b.project_key AND r.state <> 'done'
ORDER BY 1
