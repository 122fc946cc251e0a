-- The reconciliation run that opened the hold, with where its Data Docs are.
SELECT r.run_id, r.airflow_run_id, r.period, r.ledger_cutoff, r.external_cutoff, r.started_at, r.finished_at,
       r.status, r.data_docs
FROM closeout.recon_runs r
WHERE r.run_id = (SELECT recon_run_id FROM closeout_data.payout_holds WHERE hold_id = %(hold_id)s);
