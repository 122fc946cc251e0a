-- After an update in place (or adopting a finance link): the remote version now, what closeout keeps current there,
-- and whether it worked.
UPDATE closeout_data.accounting_links l
   SET remote_version = coalesce(x.remote_version, l.remote_version),
       pushed_sha256 = coalesce(x.pushed_sha256, l.pushed_sha256),
       status = x.status,
       detail = x.detail,
       synced_at = CASE WHEN x.status = 'linked' THEN clock_timestamp() ELSE l.synced_at END,
       updated_at = clock_timestamp()
  FROM jsonb_to_recordset(%(links)s::jsonb)
       AS x(closeout_ref text, remote_version text, pushed_sha256 text, status text, detail text)
 WHERE l.system = %(system)s AND l.company_id = %(company_id)s AND l.object_kind = 'customer'
   AND l.closeout_ref = x.closeout_ref
