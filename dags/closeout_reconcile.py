"""
### closeout_reconcile

Reconciles the chain with Great Expectations suites, one per link: time entries -> invoice lines, invoices ->
Stripe, journals (balance, receivable), Stripe payments -> journals, journals and invoices -> the accounting
system's own export, payout items -> paid invoices. Verdicts: `closeout.recon_checks`; Data Docs:
`$CLOSEOUT_DATA_DOCS_DIR` (default `.closeout/data_docs/`).

On any breach it calls `closeout.gate.breach`: pauses `closeout_payouts` (env `CLOSEOUT_PAYOUTS_DAG_ID`), opens a
payout hold, alerts finance, then fails the run without retries. A green run never releases a hold. Params:
`period` (`YYYY-MM`, optional), `ledger_cutoff` and `external_cutoff` (ISO timestamps, optional, default now):
settlement lag between the two sides is absorbed by setting the ledger side later. Schedule: daily (env
`CLOSEOUT_RECONCILE_SCHEDULE`).
"""

from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context, task
from closeout.dag_defaults import START_DATE, default_args, schedule


@dag(
    dag_id="closeout_reconcile",
    schedule=schedule("CLOSEOUT_RECONCILE_SCHEDULE", "@daily"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    params={
        "period": Param(None, type=["null", "string"], pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$"),
        "ledger_cutoff": Param(None, type=["null", "string"]),
        "external_cutoff": Param(None, type=["null", "string"]),
    },
    tags=["closeout", "reconcile", "gx"],
    doc_md=__doc__,
)
def closeout_reconcile():
    @task
    def reconcile() -> dict:
        from closeout.params import period_param, timestamp_param
        from closeout.recon import tasks

        context = get_current_context()
        p = context["params"]
        return tasks.reconcile(context["run_id"], period_param("period", p.get("period")),
                               timestamp_param("ledger_cutoff", p.get("ledger_cutoff")),
                               timestamp_param("external_cutoff", p.get("external_cutoff")))  # fmt: skip

    reconcile()


closeout_reconcile()
