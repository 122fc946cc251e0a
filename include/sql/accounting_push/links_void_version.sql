-- The SyncToken read again after a stale one was refused, kept on the link BEFORE the void is sent with it: a void
-- whose answer is lost is then sent again with the same token, under the same requestid, and replayed.
UPDATE closeout_data.accounting_links
   SET remote_version = %(remote_version)s, updated_at = clock_timestamp()
 WHERE system = %(system)s AND company_id = %(company_id)s AND object_kind = 'invoice' AND closeout_ref = %(ref)s
   AND remote_state IS NULL
