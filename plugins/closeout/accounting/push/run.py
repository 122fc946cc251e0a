"""One push run for one accounting system: settle unanswered batches, then push each kind in batches.

Exactly once, in three layers:

1. every batch is written to ``closeout_data.accounting_push_batches`` with its exact body and committed before
   it is sent; its business ref (hence the requestid / Idempotency-Key the hook derives) is a digest of what it
   carries, so the same batch always goes under the same key;
2. a batch whose answer was never recorded (a timeout the hook's retries did not outlive, a killed worker) is sent
   again, byte for byte, at the start of the next run: the vendor replays its first answer instead of creating;
3. once such a batch is older than the vendor's key lifetime (``key_lifetime_seconds``), it is not resent: its
   objects are looked up there by the reference closeout wrote on them, those found are linked, and the rest are
   planned again as new objects.

A record that cannot go is held in ``closeout_data.accounting_push_exceptions`` with its reason, before sending
(``books.Hold``) or from the vendor's per-item refusal; the rest of its batch goes through. A held record is
planned again every run (with one more attempt in its digest, so a stored refusal is never replayed) and its
exception is resolved the moment it is linked.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from closeout import locks
from closeout.accounting.api.outbox import payload_hash
from closeout.accounting.api.wire import jsonable
from closeout.accounting.push import documents, plan
from closeout.accounting.push.books import Answer, Hold, QuickBooksBooks, XeroBooks
from closeout.accounting.push.settings import PushSettings
from closeout.paths import load_sql
from closeout.warehouse.db import connect

log = logging.getLogger(__name__)

Books = QuickBooksBooks | XeroBooks


@dataclass
class PushRun:
    """What one run did, per kind (task log, tests, benchmark)."""

    system: str
    company_id: str
    pushed: dict[str, int] = field(default_factory=dict)
    held: dict[str, list[str]] = field(default_factory=dict)
    batches: int = 0
    resent: int = 0
    looked_up: int = 0
    found_by_reference: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"system": self.system, "company_id": self.company_id, "pushed": self.pushed,
                "held": {k: len(v) for k, v in self.held.items()}, "batches": self.batches, "resent": self.resent,
                "looked_up": self.looked_up, "found_by_reference": self.found_by_reference}  # fmt: skip


def books_for(system: str, conn_id: str | None = None, *, warehouse_conn_id: str = "closeout_warehouse") -> Books:
    """The push's view of ``system`` through its hook (connection ``<system>_default`` unless given)."""
    from closeout.connections import get_connection

    conn_id = conn_id or f"{system}_default"
    settings = PushSettings.from_extra(get_connection(conn_id).extra)
    with connect(warehouse_conn_id, autocommit=True) as conn:
        chart = dict(conn.execute("SELECT role, code FROM closeout_data.ledger_accounts "
                                  "WHERE active AND role IS NOT NULL").fetchall())  # fmt: skip
    if system == "quickbooks":
        from closeout.accounting.api.quickbooks import QuickBooksHook

        return QuickBooksBooks(QuickBooksHook(conn_id, warehouse_conn_id=warehouse_conn_id), settings, chart)
    if system == "xero":
        from closeout.accounting.api.xero import XeroHook

        return XeroBooks(XeroHook(conn_id, warehouse_conn_id=warehouse_conn_id), settings, chart)
    raise ValueError(f"unknown accounting system {system!r}; expected quickbooks or xero")


def push(books: Books, *, warehouse_conn_id: str = "closeout_warehouse") -> PushRun:
    """Push everything booked and not yet there; returns what was done."""
    run = PushRun(books.system, books.company_id)
    scope = {"system": books.system, "company_id": books.company_id}
    with connect(warehouse_conn_id, autocommit=True) as conn:
        # one push per company at a time (the hourly DAG and the close may overlap): the second plans after the
        # first has linked what it sent, so nothing is planned twice; released with the connection
        name = f"accounting_push:{books.system}:{books.company_id}"
        locks.acquire(conn, locks.lock_key(conn, name), name=name)
        _settle_pending(conn, books, scope, run)
        for kind in plan.KINDS:
            records = plan.read(conn, kind, books.system, books.company_id, books.settings.home_currency)
            ready: list[tuple[plan.Record, dict[str, Any]]] = []
            holds: list[dict[str, Any]] = []
            for record in records:
                try:
                    ready.append((record, books.shape(record)))
                except Hold as hold:
                    holds.append(_hold_row(plan.object_kind(record.kind), record.ref, hold.reason, hold.detail,
                                           record))  # fmt: skip
            if holds:
                _hold(conn, scope, holds, run)
            for chunk in _chunks(ready, books.batch_size):  # batched and linked as its object kind
                _send_new(conn, books, scope, plan.object_kind(kind), chunk, run)
        from closeout.accounting.push.voids import push_voids  # invoices voided after they went: push/voids.py

        push_voids(conn, books, scope, run)
    log.info("%s %s push: %s", run.system, run.company_id, run.as_dict())
    return run


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _sent_amount(books: Books, record: plan.Record, element: dict[str, Any]) -> dict[str, Any]:
    """The total and currency of the object as the system holds it (what its link records and invariant 9 compares):
    the record's own, except a Xero journal converted to the base currency (``documents.xero_base_journal_lines``)."""
    if (books.system == "xero" and record.kind == "journal" and record.currency != books.settings.home_currency
            and element.get("JournalLines")):  # fmt: skip
        exponent = int(record.row.get("home_exponent") if record.row.get("home_exponent") is not None else 2)
        return {"total_minor": documents.base_total(element["JournalLines"], exponent),
                "currency": books.settings.home_currency}
    return {"total_minor": record.total_minor, "currency": record.currency}


def _members(record: plan.Record) -> dict[str, Any]:
    """A group journal's members (the ledger journals it carries), recorded with its batch and, once it is there,
    in ``closeout_data.accounting_push_members``."""
    members = record.row.get("members")
    return {"members": members} if members else {}


def _send_new(conn: Any, books: Books, scope: dict[str, str], kind: str,
              chunk: list[tuple[plan.Record, dict[str, Any]]], run: PushRun) -> None:  # fmt: skip
    # txn_date: QuickBooks finds a payment again by its date range (its PrivateNote is not filterable, books.py)
    items = [{"ref": r.ref, "lookup": books.lookup_value(r), **_sent_amount(books, r, element),
              "txn_date": r.txn_date.isoformat(), **_members(r)} for r, element in chunk]  # fmt: skip
    elements = [element for _, element in chunk]
    identity = json.dumps([kind, [(r.ref, r.attempts) for r, _ in chunk], payload_hash(elements)])
    digest = f"push:{kind}:{hashlib.sha256(identity.encode()).hexdigest()[:32]}"
    batch_id, business_ref = conn.execute(load_sql("accounting_push/batch_insert.sql"), {
        **scope, "object_kind": kind, "digest": digest, "items": json.dumps(items),
        "payload": json.dumps(jsonable(elements))}).fetchone()  # fmt: skip
    run.batches += 1
    _deliver(conn, books, scope, batch_id, kind, business_ref, items, elements, run)


def _deliver(conn: Any, books: Books, scope: dict[str, str], batch_id: int, kind: str, business_ref: str,
             items: list[dict[str, Any]], elements: list[dict[str, Any]], run: PushRun) -> None:  # fmt: skip
    """Send one recorded batch and record its answer; a retryable failure leaves it pending and raises."""
    conn.execute(load_sql("accounting_push/batch_sent.sql"), {"batch_id": batch_id})
    refs = [str(i["ref"]) for i in items]
    try:
        answers = books.send(kind, business_ref, refs, elements)
    except Exception as exc:
        if getattr(exc, "retryable", True) or not hasattr(exc, "retryable"):
            raise  # pending: the next try sends the same body under the same key
        answers = [Answer(ref, reason="refused", detail=str(exc)) for ref in refs]
        _record(conn, scope, batch_id, kind, items, answers, run, state="failed", error=str(exc)[:2000])
        return
    _record(conn, scope, batch_id, kind, items, answers, run, state="answered", error=None)


def _record(conn: Any, scope: dict[str, str], batch_id: int, kind: str, items: list[dict[str, Any]],
            answers: list[Answer], run: PushRun, *, state: str, error: str | None,
            matched_by: str = "pushed") -> None:  # fmt: skip
    """Links for the objects there, holds for the refused, and the batch closed: one transaction."""
    by_ref = {str(i["ref"]): i for i in items}
    links = [{"object_kind": kind, "closeout_ref": a.ref, "external_id": a.external_id, "remote_version": a.version,
              "matched_by": matched_by, "total_minor": by_ref[a.ref]["total_minor"],
              "currency": by_ref[a.ref]["currency"]} for a in answers if a.external_id]  # fmt: skip
    holds = [_hold_row(kind, a.ref, a.reason or "refused", a.detail or "refused", by_ref[a.ref])
             for a in answers if not a.external_id or a.reason]  # fmt: skip (linked, yet held: tax_mismatch)
    with conn.transaction():
        if links:
            conn.execute(load_sql("accounting_push/links_record.sql"), {**scope, "links": json.dumps(links)})
            members = [{"object_kind": kind, "closeout_ref": a.ref, **m} for a in answers if a.external_id
                       for m in by_ref[a.ref].get("members") or []]  # fmt: skip
            if members:
                conn.execute(load_sql("accounting_push/members_record.sql"), {**scope, "members": json.dumps(members)})
        if holds:
            conn.execute(load_sql("accounting_push/exceptions_hold.sql"), {**scope, "holds": json.dumps(holds)})
        conn.execute(load_sql("accounting_push/batch_close.sql"), {"batch_id": batch_id, "state": state,
                                                                   "error": error})  # fmt: skip
    if links:
        run.pushed[kind] = run.pushed.get(kind, 0) + len(links)
    for hold in holds:
        run.held.setdefault(kind, []).append(hold["closeout_ref"])


def _hold_row(kind: str, ref: str, reason: str, detail: str, source: Any) -> dict[str, Any]:
    currency = source.currency if isinstance(source, plan.Record) else source.get("currency")
    total = source.total_minor if isinstance(source, plan.Record) else source.get("total_minor")
    return {"object_kind": kind, "closeout_ref": ref, "reason": reason, "detail": detail[:2000],
            "currency": currency, "total_minor": total}  # fmt: skip


def _hold(conn: Any, scope: dict[str, str], holds: list[dict[str, Any]], run: PushRun) -> None:
    conn.execute(load_sql("accounting_push/exceptions_hold.sql"), {**scope, "holds": json.dumps(holds)})
    for hold in holds:
        run.held.setdefault(hold["object_kind"], []).append(hold["closeout_ref"])


def _settle_pending(conn: Any, books: Books, scope: dict[str, str], run: PushRun) -> None:
    """Batches sent but never answered: resent under their key while it lives, else looked up by reference."""
    rows = conn.execute(load_sql("accounting_push/batches_pending.sql"), scope).fetchall()
    for batch_id, kind, business_ref, items, payload_text, age in rows:
        if float(age) <= books.settings.key_lifetime_seconds:
            elements = json.loads(payload_text, parse_float=Decimal)
            run.resent += 1
            _deliver(conn, books, scope, batch_id, kind, business_ref, items, elements, run)
            continue
        run.looked_up += 1
        found = books.find(kind, items)
        answers = [Answer(str(i["ref"]), *found[str(i["ref"])]) for i in items if str(i["ref"]) in found]
        run.found_by_reference += len(answers)
        # objects not found are planned again as new ones (this batch is closed: its key is past its lifetime)
        _record(conn, scope, batch_id, kind, [i for i in items if str(i["ref"]) in found], answers, run,
                state="looked_up", error=f"key past its lifetime: {len(answers)} of {len(items)} found by reference",
                matched_by="reference")  # fmt: skip
