-- Remote customers already linked in this company, as a client's customer or a project's sub-customer: a remote
-- customer is never linked to a second closeout object.
SELECT external_id, closeout_ref
FROM closeout_data.accounting_links
WHERE system = %(system)s AND company_id = %(company_id)s AND object_kind IN ('customer', 'project')
