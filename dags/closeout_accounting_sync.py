"""
### closeout_accounting_sync

Keeps QuickBooks Online and/or Xero current through their APIs, exactly once (docs/accounting-push.md). Per
configured system (its connection `quickbooks_default` / `xero_default` exists; otherwise its tasks skip and the
CSV export stays the way in):

1. **customers**: every client linked to exactly one customer there (`closeout.accounting_links`); doubtful
   matches wait for finance (`closeout.accounting_link_reviews`).
2. **push**: invoices with their lines, payments applied to their invoices, then the remaining journals (Stripe
   fees, payouts to the bank, refunds, disputes, FX, credit notes, ...), in batches (QuickBooks 30, Xero 50), each
   recorded in `closeout.accounting_links`; a record that cannot go is held in
   `closeout.accounting_push_exceptions` with its reason and the rest goes through.
3. **read_back**: the accounting system's own records into the warehouse, by
   `closeout.accounting.readback.tasks` when installed.

Schedule: hourly (env `CLOSEOUT_ACCOUNTING_SYNC_SCHEDULE`, a cron; `none` for manual).
"""

from __future__ import annotations

from airflow.sdk import dag, get_current_context, task
from closeout.dag_defaults import START_DATE, default_args, schedule


@dag(
    dag_id="closeout_accounting_sync",
    schedule=schedule("CLOSEOUT_ACCOUNTING_SYNC_SCHEDULE", "15 * * * *"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    tags=["closeout", "accounting", "quickbooks", "xero"],
    doc_md=__doc__,
)
def closeout_accounting_sync():
    def for_system(system: str) -> None:
        def ready() -> str:
            from airflow.sdk.exceptions import AirflowSkipException
            from closeout.accounting.push import tasks

            if not tasks.configured(system):
                raise AirflowSkipException(f"connection {tasks.conn_id_of(system)} does not exist: file mode")
            return get_current_context()["run_id"]

        @task(task_id=f"{system}_customers")
        def customers() -> dict:
            from closeout.accounting.push import tasks

            return tasks.sync_customers(system, ready())

        @task(task_id=f"{system}_push")
        def push(_: dict) -> dict:
            from closeout.accounting.push import tasks

            return tasks.push_books(system, ready())

        @task(task_id=f"{system}_read_back")
        def read_back(_: dict) -> dict:
            from closeout.accounting.push import tasks

            return tasks.read_back(system, ready())

        read_back(push(customers()))

    for system in ("quickbooks", "xero"):
        for_system(system)


closeout_accounting_sync()
