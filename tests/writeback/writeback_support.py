"""The chain the write-back follows, built through closeout's own DAGs against the sandboxes: Harvest entries
synced by closeout_sync_harvest, drafted by closeout_invoice_drafts, published to the Stripe sandbox by
closeout_stripe_publish, paid there and confirmed by closeout_stripe_events."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from payments_support import last_month

PROJECT = 14300012  # "Discovery Phase" of Pied Piper Systems GmbH (USD), billed by person, in the sandbox's catalogue
CLIENT = 5735002
TASK = 8083027  # Development, billable on that project


def bill_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clients: dict[int, str]) -> None:
    """Billing configuration: these Harvest clients, drafts publish without approval, one line per project."""
    config = tmp_path / "clients.yaml"
    body = "defaults:\n  require_approval: false\nclients:\n"
    for client_id, currency in clients.items():
        body += (f'  - client_key: "harvest:{client_id}"\n    name: Client {client_id}\n    currency: {currency}\n'
                 f"    grouping: project\n    email: ap{client_id}@example.com\n")  # fmt: skip
    config.write_text(body)
    monkeypatch.setenv("CLOSEOUT_BILLING_CONFIG", str(config))


def add_work(harvest, hours: list[float], *, project: int = PROJECT, task: int = TASK, closed: bool = True,
             first_day: date | None = None) -> list[int]:  # fmt: skip
    """Billable entries last month on ``project`` (approved unless ``closed`` is False); returns their ids."""
    start = first_day or last_month()
    ids = []
    for n, h in enumerate(hours):
        entry = harvest.create_entry(project_id=project, task_id=task, spent_date=start + timedelta(days=n),
                                     hours=h, is_closed=closed, notes=f"work {n}")  # fmt: skip
        assert entry["billable"] and entry["billable_rate"], entry
        ids.append(entry["id"])
    return ids


def issue(run_dag) -> None:
    """Sync, draft and publish (the invoices of last month become open Stripe invoices)."""
    for dag_id in ("closeout_sync_harvest", "closeout_invoice_drafts", "closeout_stripe_publish"):
        result = run_dag(dag_id)
        assert result.state == "success", result


def pay_all(stripe_sandbox, warehouse, run_dag) -> list[str]:
    """The clients pay every open invoice in full in Stripe; closeout learns it from the events."""
    paid = []
    for invoice_id, stripe_id in warehouse.rows(
        "SELECT invoice_id, stripe_invoice_id FROM closeout.invoices WHERE status = 'open' ORDER BY 1"
    ):
        stripe_sandbox.pay_invoice(stripe_id)
        paid.append(invoice_id)
    result = run_dag("closeout_stripe_events")
    assert result.state == "success", result
    return paid


def writebacks(warehouse, kind: str | None = None) -> list[tuple[Any, ...]]:
    """(source, object_kind, closeout_ref, external_id, status, method, reason) of the public view."""
    where = "WHERE object_kind = %s" if kind else ""
    return warehouse.rows(
        f"SELECT source, object_kind, closeout_ref, external_id, status, method, reason "
        f"FROM closeout.tracker_writebacks {where} ORDER BY object_kind, closeout_ref",
        (kind,) if kind else None,
    )


def harvest_writes(harvest) -> int:
    """Mutating calls Harvest received (status counted whatever it was)."""
    return sum(1 for method, _target, _status in harvest.stats()["log"] if method != "GET")
