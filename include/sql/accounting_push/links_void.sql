-- An invoice voided there: recorded on its link (remote_state 'void', the version the system answered), its open
-- exception resolved. Only a link not yet voided moves, so recording the same answer twice changes nothing.
WITH voided AS (
    UPDATE closeout_data.accounting_links
       SET remote_state = 'void', voided_at = clock_timestamp(),
           remote_version = coalesce(%(remote_version)s, remote_version), updated_at = clock_timestamp(),
           synced_at = clock_timestamp()
     WHERE system = %(system)s AND company_id = %(company_id)s AND object_kind = 'invoice'
       AND closeout_ref = %(ref)s AND remote_state IS NULL
    RETURNING closeout_ref
), resolved AS (
    UPDATE closeout_data.accounting_push_exceptions e
       SET resolved_at = clock_timestamp()
     WHERE e.system = %(system)s AND e.company_id = %(company_id)s AND e.object_kind = 'invoice'
       AND e.closeout_ref = %(ref)s AND e.resolved_at IS NULL
    RETURNING e.exception_id
)
SELECT count(*) FROM voided
