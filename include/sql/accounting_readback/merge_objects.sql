-- The read-back copy takes what the accounting system answered (staged in readback_staging by COPY): a new object is
-- inserted, a known one updated only when its version moved on (QuickBooks SyncToken, Xero UpdatedDateUTC) or it was
-- deleted there, never back to an older version an overlapping read listed again. A deletion keeps what was known of
-- the object (QuickBooks reports only its id). run_id marks what changed in this read-back: the invoices ingest and
-- the run's counts take exactly those rows.
INSERT INTO closeout_data.accounting_remote_objects AS o
    (system, company_id, entity, external_id, object_kind, reference, txn_date, currency, total_minor, status,
     deleted, remote_version, remote_updated_at, raw, first_run_id, run_id, tax_minor)
SELECT DISTINCT ON (s.entity, s.external_id)
       %(system)s, %(company_id)s, s.entity, s.external_id, s.object_kind, s.reference, s.txn_date, upper(s.currency),
       s.total_minor, s.status, s.deleted, s.remote_version, s.remote_updated_at, s.raw, %(run_id)s, %(run_id)s,
       s.tax_minor
FROM readback_staging s
ORDER BY s.entity, s.external_id, s.remote_updated_at DESC NULLS LAST, s.deleted DESC
ON CONFLICT (system, company_id, entity, external_id) DO UPDATE SET
    object_kind = coalesce(EXCLUDED.object_kind, o.object_kind),
    reference = CASE WHEN EXCLUDED.deleted THEN coalesce(EXCLUDED.reference, o.reference) ELSE EXCLUDED.reference END,
    txn_date = CASE WHEN EXCLUDED.deleted THEN coalesce(EXCLUDED.txn_date, o.txn_date) ELSE EXCLUDED.txn_date END,
    currency = CASE WHEN EXCLUDED.deleted THEN coalesce(EXCLUDED.currency, o.currency) ELSE EXCLUDED.currency END,
    total_minor = CASE WHEN EXCLUDED.deleted THEN coalesce(EXCLUDED.total_minor, o.total_minor)
                       ELSE EXCLUDED.total_minor END,
    tax_minor = CASE WHEN EXCLUDED.deleted THEN coalesce(EXCLUDED.tax_minor, o.tax_minor) ELSE EXCLUDED.tax_minor END,
    status = EXCLUDED.status,
    deleted = EXCLUDED.deleted,
    remote_version = EXCLUDED.remote_version,
    remote_updated_at = EXCLUDED.remote_updated_at,
    raw = CASE WHEN EXCLUDED.deleted AND EXCLUDED.total_minor IS NULL THEN o.raw ELSE EXCLUDED.raw END,
    run_id = EXCLUDED.run_id,
    read_at = clock_timestamp()
WHERE (o.remote_version IS DISTINCT FROM EXCLUDED.remote_version OR o.deleted <> EXCLUDED.deleted)
  AND (o.remote_updated_at IS NULL OR EXCLUDED.remote_updated_at IS NULL
       OR EXCLUDED.remote_updated_at >= o.remote_updated_at)
