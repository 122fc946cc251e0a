-- Remote customers already linked to some closeout client in this company (never linked to a second one).
SELECT external_id, closeout_ref
FROM closeout_data.accounting_links
WHERE system = %(system)s AND company_id = %(company_id)s AND object_kind = 'customer'
