UPDATE closeout_data.accounting_readback_runs
SET status = %(status)s, finished_at = clock_timestamp(), requests = %(requests)s, objects_read = %(objects_read)s,
    objects_changed = %(objects_changed)s, invoices_ingest_id = %(invoices_ingest_id)s,
    ledger_ingest_id = %(ledger_ingest_id)s, cursors = %(cursors)s, error = %(error)s
WHERE run_id = %(run_id)s
