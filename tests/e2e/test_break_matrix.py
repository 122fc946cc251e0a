"""Issue 6's break-injection matrix, end to end.

A green chain first, built once for the module through closeout's own code and real DAG runs (``dag.test``):
drafts -> closeout_stripe_publish -> customers pay in the Stripe sandbox -> closeout_stripe_events (payments
applied, journals posted) -> the accounting round trip (closeout's export files imported by the accounting system,
its own exports ingested back) -> closeout_reconcile green on all seven checks -> closeout_payouts transfers each
item once, a second run transfers nothing -> closeout_reconcile green again over the real transfers.

Then one break per check, each on its own copy of that warehouse (CREATE DATABASE ... TEMPLATE) and injected the
way it would really happen. Each must fail exactly its own check, pause closeout_payouts through the real Airflow
API server, open exactly one payout hold naming the run and the check, and deliver one e-mail (to a real local
SMTP server) and one webhook (to a local HTTP receiver) a finance person can act on; a reconcile run again, after
someone unpaused payouts, pauses again and sends nothing new; closeout_payouts triggered anyway refuses and no
transfer reaches Stripe.

The reconciliations here run without a period, as the daily schedule does: the books to date. (A month's run
compares the ledger lines posted in that month, and closeout posts today what Stripe confirms today, so a month
before today holds no journals to compare with the accounting system's General Ledger.)
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from closeout.warehouse.embedded import ENV_VAR
from conftest import STRIPE_WEBHOOK_SECRET, Warehouse, run_dag_now
from payments_support import last_month

HERE = Path(__file__).resolve().parent
for _folder in ("gate", "payouts"):
    sys.path.insert(0, str(HERE.parent / _folder))
import e2e_support as e2e  # noqa: E402
import gate_support  # noqa: E402
from payouts_support import check_invariant_6, draft_work, items, payees_file, user_key  # noqa: E402

pytestmark = pytest.mark.integration

api_server, airflow_api, smtp, hook_receiver, finance_conns = (
    gate_support.api_server, gate_support.airflow_api, gate_support.smtp, gate_support.hook_receiver,
    gate_support.finance_conns,
)  # fmt: skip

PAYOUTS = "closeout_payouts"
PERIOD = last_month().strftime("%Y-%m")
CHECKS = ("entries_to_invoice_lines", "invoices_to_stripe", "journals", "payments_to_journals", "accounting_ledger",
          "accounting_invoices", "payouts_to_paid_invoices")  # fmt: skip
# client -> [(user, hours)] at 100.00 USD an hour; entries are numbered 1.. in this order. a and b are paid.
WORK = {"a": [("u1", D("2.00")), ("u2", D("1.50"))], "b": [("u1", D("3.25"))], "c": [("u2", D("4.00"))]}
PAYEES = {"u1": ("60.00", "USD", "acct_1E2eContractorU1"), "u2": ("45.00", "USD", "acct_1E2eContractorU2")}
PLANNED = {(user_key("u1"), "a"): 12000, (user_key("u2"), "a"): 6750, (user_key("u1"), "b"): 19500}


@dataclass
class Chain:
    """The green baseline: its database (the template of every break), sandbox, files and what each step did."""

    server: dict
    database: str
    sandbox: Any
    root: Path
    invoices: dict[str, tuple[str, str, int, str]] = field(default_factory=dict)  # client -> (id, stripe, total, no)
    runs: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, dict[str, str]] = field(default_factory=dict)
    transfers: dict[str, int] = field(default_factory=dict)
    items: dict = field(default_factory=dict)


def recon_checks(warehouse: Warehouse, airflow_run_id: str) -> dict[str, dict[str, Any]]:
    rows = warehouse.rows(
        """SELECT c.check_name, c.status, c.observed, c.tolerance, c.evidence, c.run_id
           FROM closeout.recon_checks c JOIN closeout_data.recon_runs r USING (run_id)
           WHERE r.airflow_run_id = %s""",
        (airflow_run_id,),
    )
    return {r[0]: dict(zip(("status", "observed", "tolerance", "evidence", "run_id"), r[1:], strict=True))
            for r in rows}  # fmt: skip


def statuses(checks: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {name: c["status"] for name, c in checks.items()}


@pytest.fixture(scope="module")
def chain(warehouse_server, template_database, airflow_db, tmp_path_factory) -> Iterator[Chain]:
    from sandbox.stripe import StripeSandbox

    root = tmp_path_factory.mktemp("e2e")
    database = f"closeout_e2e_base_{os.getpid()}"
    e2e.clone_database(warehouse_server, template_database, database)
    sandbox = StripeSandbox(webhook_secret=STRIPE_WEBHOOK_SECRET, seed=23)
    sandbox.start()
    made = Chain(warehouse_server, database, sandbox, root)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv(ENV_VAR, e2e.warehouse_conn_json(warehouse_server, database))
            extra = {"webhook_secret": STRIPE_WEBHOOK_SECRET, "max_network_retries": 0, "timeout": 10}
            stripe_conn = {"conn_type": "http", "host": sandbox.url, "password": sandbox.secret_key, "extra": extra}
            mp.setenv("AIRFLOW_CONN_STRIPE_DEFAULT", json.dumps(stripe_conn))
            mp.setenv("CLOSEOUT_PAYEES_CONFIG", str(payees_file(root, PAYEES)))
            mp.setenv("CLOSEOUT_PAYOUTS_APPROVAL", "off")
            mp.setenv("CLOSEOUT_PAYOUTS_DAG_ID", PAYOUTS)
            mp.setenv("CLOSEOUT_DATA_DOCS_DIR", str(root / "data_docs"))
            _build_green_chain(made)
            yield made
    finally:
        sandbox.stop()
        e2e.drop_database(warehouse_server, database)


def _build_green_chain(chain: Chain) -> None:
    warehouse = Warehouse(chain.database)
    draft_work({c: list(w) for c, w in WORK.items()})
    chain.runs["publish"] = run_dag_now("closeout_stripe_publish")
    for client, iid, sid, total, number in warehouse.rows(
        "SELECT client_key, invoice_id, stripe_invoice_id, total_minor, stripe_number FROM closeout.invoices"
    ):
        chain.invoices[client.removeprefix("harvest:")] = (iid, sid, total, number)
    for client in ("a", "b"):
        chain.sandbox.pay_invoice(chain.invoices[client][1])
    chain.runs["events"] = run_dag_now("closeout_stripe_events")
    chain.runs["accounting"] = e2e.accounting_round_trip(chain.root / "accounting", PERIOD)
    for step in ("reconcile", "payouts", "payouts_again", "reconcile_again"):
        chain.runs[step] = run_dag_now(PAYOUTS if step.startswith("payouts") else "closeout_reconcile")
        if step.startswith("reconcile"):
            chain.checks[step] = statuses(recon_checks(warehouse, chain.runs[step].run_id))
        chain.transfers[step] = chain.sandbox.count("transfer")
    chain.items = items(warehouse)


def test_the_green_chain_reconciles_every_link_and_pays_each_item_once(chain: Chain) -> None:
    for step in ("publish", "events", "reconcile", "payouts", "payouts_again", "reconcile_again"):
        assert chain.runs[step].state == "success", (step, chain.runs[step])
    assert {c: v[2] for c, v in chain.invoices.items()} == {"a": 35000, "b": 32500, "c": 40000}
    # every check compared something and passed: the accounting ones on the ingested exports, payouts on real items
    assert chain.checks["reconcile"] == dict.fromkeys(CHECKS, "passed"), chain.checks["reconcile"]
    assert chain.checks["reconcile_again"] == dict.fromkeys(CHECKS, "passed"), chain.checks["reconcile_again"]
    assert chain.runs["payouts"].task_states["approve"] == "skipped"  # approval switched off by configuration

    invoice_of = {v[0]: c for c, v in chain.invoices.items()}
    got = {(payee, invoice_of[iid]): v for (payee, iid), v in chain.items.items()}
    assert {k: (v[0], v[1], v[2]) for k, v in got.items()} == {k: (a, "USD", "transferred") for k, a in PLANNED.items()}
    assert chain.transfers["payouts"] == len(PLANNED)  # one transfer per item
    assert chain.transfers["payouts_again"] == len(PLANNED)  # and the second run released nothing
    assert chain.transfers["reconcile_again"] == len(PLANNED)


def test_the_green_chain_maps_each_item_to_exactly_one_transfer(chain: Chain, monkeypatch) -> None:
    monkeypatch.setenv(ENV_VAR, e2e.warehouse_conn_json(chain.server, chain.database))
    warehouse = Warehouse(chain.database)
    check_invariant_6(warehouse, chain.sandbox)
    ingests = warehouse.rows("SELECT kind, rows_loaded, rows_quarantined FROM closeout.accounting_ingests ORDER BY 1")
    assert [(k, q) for k, _, q in ingests] == [("general_ledger", 0), ("invoices", 0)] and all(n for _, n, _ in ingests)
    assert warehouse.scalar("SELECT count(*) FROM closeout.payout_holds") == 0
