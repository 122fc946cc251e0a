-- A dry run's reconciliation is not a verdict: the payouts gate reads the latest run in closeout.recon_runs, so
-- a dry run must leave none behind (its results live on in the close run's steps and its Data Docs folder).
WITH gone_differences AS (
    DELETE FROM closeout_data.recon_differences WHERE run_id = %(run_id)s
), gone_checks AS (
    DELETE FROM closeout_data.recon_checks WHERE run_id = %(run_id)s
)
DELETE FROM closeout_data.recon_runs WHERE run_id = %(run_id)s
