"""Set-up for the project sub-customer tests: invoices whose lines belong to named projects, published by closeout to
the Stripe sandbox (paid where asked) with every journal posted, and the QuickBooks sandbox connected with projects
as sub-customers."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
for folder in ("ledger", "accounting_api", "accounting_push", "controls"):
    if str(ROOT / "tests" / folder) not in sys.path:
        sys.path.insert(0, str(ROOT / "tests" / folder))

from accounting_push_support import QBO_NO_LIMITS, a_month, connect_quickbooks, created, links, set_push  # noqa: E402
from billing_support import Books, Entry  # noqa: E402
from closeout.payments import tasks as payment_tasks  # noqa: E402
from closeout.warehouse.db import connect  # noqa: E402
from ledger_support import follow_cash  # noqa: E402
from payments_support import last_month  # noqa: E402

from sandbox.quickbooks import QuickBooksSandbox  # noqa: E402

__all__ = ["QBO_NO_LIMITS", "a_month", "connect_projects", "connect_quickbooks", "created", "follow_cash", "links",
           "project_links", "publish_projects", "set_push", "sub_customers"]


def connect_projects(monkeypatch: Any, sandbox: QuickBooksSandbox, **extra: Any) -> None:
    """``quickbooks_default`` as a platform team sets it up with projects as sub-customers."""
    connect_quickbooks(monkeypatch, sandbox, projects_as_sub_customers=True, **extra)


def publish_projects(stripe_sandbox: Any, invoices: dict[str, list[str]], *, names: dict[str, str] | None = None,
                     paid: tuple[str, ...] = ()) -> dict[str, tuple[str, str, int]]:  # fmt: skip
    """One invoice per client with one 1-hour entry per project listed (a project may repeat); the projects are named
    ``names[p]`` (default ``Project <P>``) by the tracker. Published through closeout, those in ``paid`` paid in
    full through Stripe, cash and journals followed: client -> (invoice_id, stripe_invoice_id, total_minor)."""
    start = last_month()
    with connect() as conn:
        books = Books(conn)
        books.configure({"defaults": {"require_approval": False},
                         "clients": [{"client_key": f"harvest:{c}", "currency": "USD", "grouping": "entry",
                                      "name": f"Client {c.upper()}", "email": f"ap@{c}.example"}
                                     for c in invoices]})  # fmt: skip
        projects = sorted({p for ps in invoices.values() for p in ps})
        for project in projects:
            name = (names or {}).get(project, f"Project {project.upper()}")
            conn.execute("""INSERT INTO closeout_data.tracker_entities
                                (source, kind, source_id, name, is_active, payload, last_sync_run_id)
                            VALUES ('harvest', 'project', %s, %s, true, %s, %s)
                            ON CONFLICT (source, kind, source_id) DO UPDATE SET name = EXCLUDED.name""",
                         (project, name, json.dumps({"id": project, "name": name}), books.sync_run_id))  # fmt: skip
        entries, n = [], 1
        for client, client_projects in invoices.items():
            for i, project in enumerate(client_projects):
                entries.append(Entry(str(n), client=client, project=project, hours=Decimal("1"),
                                     rate=Decimal("100.00"), spent_date=start + timedelta(days=i % 27)))  # fmt: skip
                n += 1
        books.put(*entries)
        books.draft()
        ids = {c: books.invoice_for(f"harvest:{c}", start) for c in invoices}
        conn.commit()
    assert all(ids.values()), ids
    payment_tasks.publish_drafts("publish")
    with connect() as conn:
        rows = conn.execute("SELECT client_key, invoice_id, stripe_invoice_id, total_minor FROM closeout.invoices "
                            "WHERE invoice_id = ANY(%s)", (list(ids.values()),)).fetchall()  # fmt: skip
    published = {c.removeprefix("harvest:"): (iid, sid, total) for c, iid, sid, total in rows}
    follow_cash()
    for client in paid:
        stripe_sandbox.pay_invoice(published[client][1])
    follow_cash()
    return published


def sub_customers(sandbox: QuickBooksSandbox) -> list[dict[str, Any]]:
    """The sandbox's sub-customers (``Job: true`` with a ``ParentRef``)."""
    return [c for c in sandbox.objects("Customer") if c.get("Job") and c.get("ParentRef")]


def project_links(warehouse: Any) -> dict[str, tuple[str, str]]:
    """closeout_ref -> (external_id, matched_by) of the QuickBooks project links."""
    rows = warehouse.rows("SELECT closeout_ref, external_id, matched_by FROM closeout.accounting_links "
                          "WHERE system = 'quickbooks' AND object_kind = 'project'")  # fmt: skip
    return {r[0]: (r[1], r[2]) for r in rows}
