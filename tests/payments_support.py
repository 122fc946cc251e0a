"""Drafts ready to publish, built through closeout's own capture and drafting, and the checks every
Stripe test ends with: invariant 3 of DESIGN.md, read from the warehouse and from the sandbox's state."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from billing_support import Books, Entry
from closeout.warehouse.db import connect


def last_month() -> date:
    return (date.today().replace(day=1) - timedelta(days=1)).replace(day=1)


def seed_drafts(clients: dict[str, list[Decimal]], *, currency: str = "USD", rate: Decimal = Decimal("100.00"),
                first_id: int = 1, period: date | None = None, names: bool = True) -> list[str]:  # fmt: skip
    """One draft per client for ``period`` (default last month, so it is publishable today): one entry per
    hours value. Returns the invoice ids, in client order."""
    start = period or last_month()
    with connect() as conn:
        books = Books(conn)
        books.configure({
            "defaults": {"require_approval": False},
            "clients": [{"client_key": f"harvest:{c}", "currency": currency, "grouping": "entry",
                         **({"name": f"Client {c.upper()}", "email": f"ap@{c}.example"} if names else {})}
                        for c in clients],
        })  # fmt: skip
        n = first_id
        entries = []
        for client, hours_list in clients.items():
            for i, hours in enumerate(hours_list):
                entries.append(Entry(str(n), client=client, hours=hours, rate=rate, currency=currency,
                                     spent_date=start + timedelta(days=i % 27)))  # fmt: skip
                n += 1
        books.put(*entries)
        books.draft()
        ids = [books.invoice_for(f"harvest:{c}", start, currency) for c in clients]
        conn.commit()
    assert all(ids), ids
    return [i for i in ids if i]


def published(warehouse) -> dict[str, tuple]:
    """Invoices closeout has sent on their way to Stripe: invoice_id -> (status, total, currency, stripe id)."""
    rows = warehouse.rows(
        """SELECT invoice_id, status, total_minor, currency, stripe_invoice_id FROM closeout.invoices
           WHERE status NOT IN ('draft') ORDER BY invoice_id"""
    )
    return {r[0]: r[1:] for r in rows}


def check_invariant_3(warehouse, sandbox) -> None:
    """Every published invoice has exactly one Stripe invoice, with the same total and currency; Stripe holds
    no invoice closeout did not publish (beyond those a test made by hand, which carry no closeout metadata)."""
    ours = {r[0]: r[1:] for r in warehouse.rows(
        """SELECT p.invoice_id, p.total_minor, p.currency, p.stripe_invoice_id, p.state
           FROM closeout.stripe_publications p""")}  # fmt: skip
    theirs: dict[str, list[dict[str, Any]]] = {}
    for invoice in sandbox.objects("invoice"):
        closeout_id = (invoice.get("metadata") or {}).get("closeout_invoice_id")
        if closeout_id:
            theirs.setdefault(closeout_id, []).append(invoice)
    for invoice_id, (total, currency, stripe_id, state) in ours.items():
        found = theirs.get(invoice_id, [])
        if state == "pending":
            assert not found, f"{invoice_id}: Stripe has an invoice for a publication that never created one"
            continue
        assert len(found) == 1, f"{invoice_id}: {len(found)} Stripe invoices: {[f['id'] for f in found]}"
        assert found[0]["id"] == stripe_id, (invoice_id, found[0]["id"], stripe_id)
        if state == "finalized":
            assert found[0]["total"] == total, (invoice_id, found[0]["total"], total)
            assert found[0]["currency"] == currency.lower(), (invoice_id, found[0]["currency"], currency)
    assert set(theirs) <= set(ours), f"Stripe invoices for unknown drafts: {set(theirs) - set(ours)}"
    finalized = [i for i, v in ours.items() if v[3] == "finalized"]
    stripe_open = [i for i, invs in theirs.items() if invs[0]["status"] != "draft"]
    assert sorted(finalized) == sorted(stripe_open), "finalized publications and finalized Stripe invoices differ"


def invoice_state(warehouse) -> dict[str, tuple]:
    """What events made of each published invoice: status, amount paid, payment history by kind."""
    query = "SELECT invoice_id, status, amount_paid_minor FROM closeout.invoices WHERE stripe_invoice_id IS NOT NULL"
    state = {r[0]: (r[1], r[2]) for r in warehouse.rows(query)}
    history = {}
    for invoice_id, kind, n, amount in warehouse.rows(
        """SELECT invoice_id, kind, count(*), sum(amount_minor) FROM closeout.invoice_payments
           GROUP BY invoice_id, kind ORDER BY invoice_id, kind"""
    ):
        history.setdefault(invoice_id, []).append((kind, n, int(amount)))
    return {k: (*v, tuple(history.get(k, []))) for k, v in state.items()}
