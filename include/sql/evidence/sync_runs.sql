-- The tracker sync runs that saw the pack's entry versions.
SELECT r.sync_run_id, r.source, r.mode, r.status, r.started_at, r.finished_at, r.requests, r.records,
       r.versions_created, r.deletions, r.quarantined, r.airflow_run_ids
FROM closeout.sync_runs r
WHERE r.sync_run_id IN (
    SELECT v.sync_run_id
    FROM closeout.invoice_line_entries e
    JOIN closeout.time_entry_versions v
      ON v.source = e.source AND v.source_id = e.source_id
    WHERE e.invoice_id = ANY(%(invoice_ids)s::text[])
)
ORDER BY r.sync_run_id;
