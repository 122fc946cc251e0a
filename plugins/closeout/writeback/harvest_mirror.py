"""Mirror closeout's issued invoices in Harvest, so Harvest shows as billed exactly what closeout billed.

For each invoice issued in Stripe (open or paid) that bills Harvest time or expenses:

1. **Import where it is exact.** Harvest's ``line_items_import`` bills *every* uninvoiced billable entry and expense
   of the given projects in the date range, and is the only way to mark them ``is_billed``. closeout first reads
   what it would select (``GET time_entries`` / ``expenses`` with ``is_billed=false``, project, from/to) and uses
   it only when that is exactly the items closeout billed on this invoice, for the same total, and the invoice has
   only time and expense lines. An expense billed with the client's markup is the one known difference: Harvest's
   import bills expenses at cost, so when the selection is exact and the totals differ by exactly the markup
   closeout billed (its expense rows' ``markup_minor`` plus the per-line rounding closeout recorded, computed from
   the warehouse), closeout imports and then appends one ``Expense markup`` line (``PATCH /v2/invoices/{id}``, as
   for credit notes), so Harvest's total equals closeout's and its time and expenses still show billed.
2. **Otherwise explicit line items, and gaps.** The invoice is created with closeout's own lines (same amounts),
   which bills nothing in Harvest; every billed item Harvest still shows unbilled becomes a ``gap`` row with the
   reason (the import would have billed more, or less, or another amount). closeout never bills more than it did.
3. **Marked sent** with a ``send`` message event (a state change; nobody is e-mailed).
4. **Payments**: each Stripe payment becomes a Harvest payment (amount, paid date, notes naming the payment).
5. **Credit notes**: each becomes a negative line item on the Harvest invoice (Harvest has no credit notes; the
   invoice's amount and amount due drop by the credit, as the client's Stripe invoice did).

Every write is a ``tracker_writebacks`` row: planned, then sent (committed before the call), then done/failed. A
row found ``sent`` is resolved by looking the object up first (invoice by number, which is the Stripe number;
payment by its notes; credit and markup lines by their description). An invoice someone deletes in Harvest by
hand is noticed (it is missing from the listing) and mirrored again once, recorded; deleted again, it is left failed
for a person.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row

from closeout import faults
from closeout.paths import load_sql
from closeout.trackers.transport import TrackerAPIError
from closeout.writeback import records
from closeout.writeback.harvest_api import HarvestWriter, minor, wire_amount

log = logging.getLogger(__name__)

SOURCE = "harvest"
CENT = Decimal("0.01")
IMPORTABLE_LINE_KINDS = frozenset({"time", "expense"})


class WritebackPending(RuntimeError):
    """Some writes got no answer; their rows stay 'sent' and the retry resolves them by lookup first."""


@dataclass
class HarvestSummary:
    imported: int = 0
    explicit: int = 0
    found_after_lost_answer: int = 0
    gaps: int = 0
    sent: int = 0
    payments: int = 0
    credit_notes: int = 0
    markups: int = 0
    deleted_noticed: int = 0
    failed: int = 0
    pending: int = 0
    requests: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _dicts(conn: psycopg.Connection, name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(load_sql(f"writeback/{name}.sql"), params).fetchall()


def mirror(conn: psycopg.Connection, writer: HarvestWriter, *, limit: int = 1000) -> HarvestSummary:
    """One pass: notice hand deletions, mirror new invoices, mark them sent, record payments and credit notes."""
    summary = HarvestSummary()
    remote = {str(i["id"]): i for i in writer.listing("invoices")}
    _notice_deleted(conn, remote, summary)
    by_number = {str(i["number"]): i for i in remote.values()}
    invoices = _dicts(conn, "invoices_to_mirror", {"source": SOURCE, "limit": limit})
    if invoices:
        ids = [i["invoice_id"] for i in invoices]
        items: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for item in _dicts(conn, "invoice_time_items", {"invoice_ids": ids, "source": SOURCE}):
            items[item["invoice_id"]].append(item)
        if conn.execute(load_sql("writeback/expense_lines_exist.sql")).fetchone()[0]:
            for item in _dicts(conn, "invoice_expense_items", {"invoice_ids": ids, "source": SOURCE}):
                items[item["invoice_id"]].append(item)
        lines: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for line in _dicts(conn, "invoice_lines", {"invoice_ids": ids}):
            lines[line["invoice_id"]].append(line)
        conn.commit()
        for invoice in invoices:
            _guarded(conn, summary, invoice["invoice_id"],
                     lambda inv=invoice: _mirror_invoice(conn, writer, inv, items[inv["invoice_id"]],
                                                         lines[inv["invoice_id"]], by_number, summary))  # fmt: skip
    for row in _dicts(conn, "markups_to_mirror", {"source": SOURCE}):  # before 'sent' and payments: whole invoice
        _guarded(conn, summary, row["invoice_id"], lambda r=row: _add_markup_line(conn, writer, r, summary))
    for row in _dicts(conn, "messages_to_send", {"source": SOURCE}):
        _guarded(conn, summary, row["invoice_id"], lambda r=row: _mark_sent_in_harvest(conn, writer, r, summary))
    for row in _dicts(conn, "payments_to_mirror", {"source": SOURCE}):
        _guarded(conn, summary, row["invoice_id"], lambda r=row: _record_payment(conn, writer, r, summary))
    for row in _dicts(conn, "credit_notes_to_mirror", {"source": SOURCE}):
        _guarded(conn, summary, row["invoice_id"], lambda r=row: _reflect_credit_note(conn, writer, r, summary))
    conn.commit()
    summary.requests = writer.requests
    return summary


def _guarded(conn: psycopg.Connection, summary: HarvestSummary, invoice_id: str, step: Any) -> None:
    """One invoice's trouble never stops the others: a write without an answer stays 'sent' (pending)."""
    try:
        step()
    except TrackerAPIError as exc:
        conn.rollback()
        summary.pending += 1
        log.warning("Harvest write-back of invoice %s got no usable answer (%s); the next attempt looks it up first",
                    invoice_id, exc)  # fmt: skip


# -- hand deletions ---------------------------------------------------------------------------------------------
def _notice_deleted(conn: psycopg.Connection, remote: dict[str, Any], summary: HarvestSummary) -> None:
    for row in _dicts(conn, "mirrored_invoices", {"source": SOURCE}):
        if row["external_id"] in remote:
            continue
        summary.deleted_noticed += 1
        handle = records.Row(row["writeback_id"], "done", row["external_id"], 0, row["remirrors"])
        if row["remirrors"] >= 1:
            reason = (f"Harvest invoice {row['external_id']} was deleted in Harvest again after closeout mirrored it "
                      "a second time; not mirrored again: a person decides")  # fmt: skip
            records.complete(conn, handle, status="failed", reason=reason)
            records.event(conn, handle, "not_remirrored", reason)
            summary.failed += 1
        else:
            reason = (f"Harvest invoice {row['external_id']} was deleted in Harvest by hand; its time and expenses "
                      "are unbilled there again, so closeout mirrors the invoice once more")  # fmt: skip
            records.event(conn, handle, "deleted_in_tracker", reason)
            conn.execute(load_sql("writeback/remirror.sql"),
                         {"source": SOURCE, "invoice_id": row["invoice_id"], "reason": reason})  # fmt: skip
        conn.commit()


# -- invoices ---------------------------------------------------------------------------------------------------
def _mirror_invoice(conn: psycopg.Connection, writer: HarvestWriter, invoice: dict[str, Any],
                    items: list[dict[str, Any]], lines: list[dict[str, Any]], by_number: dict[str, Any],
                    summary: HarvestSummary) -> None:  # fmt: skip
    invoice_id = invoice["invoice_id"]
    number = str(invoice["stripe_number"] or invoice_id)
    row = records.plan(conn, source=SOURCE, object_kind="invoice", closeout_ref=invoice_id, invoice_id=invoice_id,
                       writeback_key=number, request={"stripe_invoice_id": invoice["stripe_invoice_id"]})  # fmt: skip
    conn.commit()
    found = by_number.get(number)
    if found is None and row.status == "sent":
        found = _lookup_invoice(writer, number, items)
    if found is not None:  # created before, its answer never recorded (or a person made it with our number)
        _finish_from_lookup(conn, row, invoice, found, summary)
        return
    billed = [i for i in items if i["amount_minor"] > 0]
    clients = {i["client_source_id"] for i in billed}
    if len(clients) != 1:
        records.complete(conn, row, status="failed", reason=f"the billed items belong to {len(clients)} Harvest "
                         f"clients ({sorted(clients)}); one Harvest invoice has one client")  # fmt: skip
        conn.commit()
        summary.failed += 1
        return
    plan = _plan(writer, invoice, billed, lines)
    body: dict[str, Any] = {
        "client_id": int(next(iter(clients))),
        "number": number,
        "subject": f"{number}: closeout invoice {invoice_id}",
        "currency": invoice["currency"],
        "notes": f"Mirrored by closeout from Stripe invoice {invoice['stripe_invoice_id']}; paid through Stripe.",
    }
    if plan["method"] == "import":
        body["line_items_import"] = plan["import"]
    else:
        body["line_items"] = plan["line_items"]
    summary_request = {key: plan[key] for key in ("method", "projects", "time_range", "expense_range",
                                                   "items", "gap_items", "gap_reason", "markup_minor")}  # fmt: skip
    summary_request.update({"number": number, "client_id": body["client_id"], "total_minor": invoice["total_minor"]})
    records.mark_sent(conn, row, method=plan["method"], request=summary_request)
    faults.point("tracker.harvest.invoice.before_call")
    try:
        answer = writer.write("POST", "invoices", body)
    except TrackerAPIError as exc:
        if exc.status == 422 and "taken" in str(exc):  # our number exists: the lost answer's invoice
            found = _lookup_invoice(writer, number, items)
            if found is not None:
                _finish_from_lookup(conn, row, invoice, found, summary)
                return
        if exc.status is not None and 400 <= exc.status < 500 and exc.status != 429:
            records.complete(conn, row, status="failed", reason=f"Harvest refused the invoice: {exc}"[:2000])
            records.event(conn, row, "failed", str(exc)[:2000])
            conn.commit()
            summary.failed += 1
            return
        raise
    faults.point("tracker.harvest.invoice.after_call")
    assert answer is not None
    _finish(conn, row, invoice, answer, summary_request, summary)


def _plan(writer: HarvestWriter, invoice: dict[str, Any], billed: list[dict[str, Any]],
          lines: list[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    """Import if Harvest's own selection is exactly closeout's billed items at the same total, or at closeout's
    total less exactly the expense markup closeout billed (then added as one line); else explicit lines + gaps."""
    time_items = {i["source_id"]: i for i in billed if i["item_kind"] == "time"}
    expense_items = {i["source_id"]: i for i in billed if i["item_kind"] == "expense"}
    projects = sorted({int(i["project_source_id"]) for i in billed})

    def span(found: dict[str, Any]) -> list[str] | None:
        days = sorted(i["spent_date"].isoformat() for i in found.values())
        return [days[0], days[-1]] if days else None

    time_range, expense_range = span(time_items), span(expense_items)
    selected_time: dict[str, Any] = {}
    selected_expenses: dict[str, Any] = {}
    # What the import would select, read with one listing per kind for the invoice's client (a Harvest invoice has
    # one client; the caller refused any other case) and kept to the invoice's projects, as the import's
    # project_ids keeps it: one listing per project would read the same items in more requests.
    clients = {int(i["client_source_id"]) for i in billed}
    scope: dict[str, Any] = {"client_id": next(iter(clients))} if len(clients) == 1 else {}

    def in_projects(item: dict[str, Any]) -> bool:
        return (item.get("project") or {}).get("id") in projects

    def listed(resource: str, days: list[str] | None) -> Iterator[dict[str, Any]]:
        if not days:
            return
        if scope:
            query = {"is_billed": "false", **scope, "from": days[0], "to": days[1]}
            yield from (item for item in writer.listing(resource, query) if in_projects(item))
            return
        for project in projects:
            yield from writer.listing(resource, {"is_billed": "false", "project_id": project,
                                                 "from": days[0], "to": days[1]})  # fmt: skip

    for entry in listed("time_entries", time_range):
        if entry.get("billable") and entry.get("billable_rate") is not None and not entry.get("is_running"):
            selected_time[str(entry["id"])] = entry
    for expense in listed("expenses", expense_range):
        if expense.get("billable"):
            selected_expenses[str(expense["id"])] = expense
    reasons = []
    for label, ours, theirs in (("time entries", time_items, selected_time),
                                ("expenses", expense_items, selected_expenses)):  # fmt: skip
        more, fewer = sorted(set(theirs) - set(ours)), sorted(set(ours) - set(theirs))
        if more:
            reasons.append(f"Harvest's import would also bill {len(more)} {label} closeout did not bill "
                           f"({', '.join(more[:20])})")  # fmt: skip
        if fewer:
            reasons.append(f"Harvest's import would not bill {len(fewer)} {label} closeout billed (already billed "
                           f"or not billable in Harvest: {', '.join(fewer[:20])})")  # fmt: skip
    odd_lines = sorted({ln["kind"] for ln in lines} - IMPORTABLE_LINE_KINDS)
    if odd_lines:
        reasons.append(f"the invoice has {', '.join(odd_lines)} lines, which an import cannot reproduce")
    markup_minor = 0
    if not reasons:
        expected = _import_total(selected_time.values(), selected_expenses.values())
        try:
            expected_minor: int | None = minor(expected, invoice["exponent"])
        except ValueError:
            expected_minor = None
        markup = _billed_markup(expense_items.values(), lines)
        if markup and expected_minor is not None and expected_minor + markup == invoice["total_minor"]:
            markup_minor = markup
        elif expected_minor != invoice["total_minor"]:
            reasons.append(f"Harvest's import would total {expected} {invoice['currency']}, closeout billed "
                           f"{wire_amount(invoice['total_minor'], invoice['exponent'])}"
                           + (f" (of which expense markup {wire_amount(markup, invoice['exponent'])})"
                              if markup else ""))  # fmt: skip
    plan: dict[str, Any] = {"projects": projects, "time_range": time_range, "expense_range": expense_range,
                            "items": len(billed), "gap_items": [], "gap_reason": None,
                            "markup_minor": markup_minor}  # fmt: skip
    if not reasons:
        spec: dict[str, Any] = {"project_ids": projects}
        if time_range:
            spec["time"] = {"summary_type": "project", "from": time_range[0], "to": time_range[1]}
        if expense_range:
            spec["expenses"] = {"summary_type": "project", "from": expense_range[0], "to": expense_range[1],
                                "attach_receipt": False}  # fmt: skip
        plan["method"], plan["import"] = "import", spec
        return plan
    plan["method"] = "line_items"
    plan["line_items"] = [_line_item(line, invoice["exponent"]) for line in lines]
    # what Harvest will keep showing unbilled: the billed items its own uninvoiced listing still holds
    plan["gap_items"] = sorted([["time", i] for i in time_items if i in selected_time]
                               + [["expense", i] for i in expense_items if i in selected_expenses])  # fmt: skip
    plan["gap_reason"] = "; ".join(reasons)[:2000]
    return plan


def _billed_markup(expense_items: Any, lines: list[dict[str, Any]]) -> int:
    """The expense markup closeout billed on this invoice, in minor units, from the warehouse: the markup of each
    expense row (``markup_minor``) plus the per-line rounding closeout recorded (an expense line's amount against
    its rows' amounts). Zero when nothing was marked up: then an import must match closeout's total exactly."""
    rows = list(expense_items)
    markup = sum(int(i["markup_minor"] or 0) for i in rows)
    if not markup:
        return 0
    line_rounding = sum(int(ln["amount_minor"]) for ln in lines if ln["kind"] == "expense") - sum(
        int(i["amount_minor"]) for i in rows)
    return markup + line_rounding


def _import_total(entries: Any, expenses: Any) -> Decimal:
    """What an import summarised per project totals: each project's line rounded to the cent, then summed."""
    per_project: dict[tuple[str, int], Decimal] = defaultdict(Decimal)
    for entry in entries:
        per_project[("time", entry["project"]["id"])] += Decimal(str(entry["rounded_hours"])) * Decimal(
            str(entry["billable_rate"]))
    for expense in expenses:
        per_project[("expense", expense["project"]["id"])] += Decimal(str(expense["total_cost"]))
    return sum((v.quantize(CENT, rounding=ROUND_HALF_UP) for v in per_project.values()), Decimal(0))


def _line_item(line: dict[str, Any], exponent: int) -> dict[str, Any]:
    """One closeout line as a Harvest line item with the same amount (quantity x rate when that is exact)."""
    amount = Decimal(line["amount_minor"]).scaleb(-exponent)
    quantity, rate = Decimal(line["quantity"]), Decimal(line["unit_rate"])
    if (quantity * rate).quantize(Decimal(1).scaleb(-exponent), rounding=ROUND_HALF_UP) != amount or (
            quantity * rate).quantize(CENT, rounding=ROUND_HALF_UP) != amount:
        quantity, rate = Decimal(1), amount
    item: dict[str, Any] = {"kind": "Product" if line["kind"] == "expense" else "Service",
                            "description": str(line["description"])[:2000],
                            "quantity": format(quantity.normalize(), "f"), "unit_price": format(rate, "f")}  # fmt: skip
    project = str(line.get("project_key") or "")
    if project.startswith(f"{SOURCE}:") and project.split(":", 1)[1].isdigit():
        item["project_id"] = int(project.split(":", 1)[1])
    return item


def _lookup_invoice(writer: HarvestWriter, number: str, items: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The Harvest invoice carrying our number (listed per client when we know it, else the whole account)."""
    clients = {i["client_source_id"] for i in items}
    params = {"client_id": int(next(iter(clients)))} if len(clients) == 1 else None
    return next((i for i in writer.listing("invoices", params) if str(i["number"]) == number), None)


def _finish_from_lookup(conn: psycopg.Connection, row: records.Row, invoice: dict[str, Any], found: dict[str, Any],
                        summary: HarvestSummary) -> None:  # fmt: skip
    recorded, method = conn.execute(load_sql("writeback/row_request.sql"),
                                    {"writeback_id": row.writeback_id}).fetchone()  # fmt: skip
    records.event(conn, row, "found_after_lost_answer",
                  f"Harvest invoice {found['id']} (number {found['number']}) found by number; not created again")
    summary.found_after_lost_answer += 1
    _finish(conn, row, invoice, found, recorded if method else {"method": "lookup"}, summary, method="lookup")


def _finish(conn: psycopg.Connection, row: records.Row, invoice: dict[str, Any], answer: dict[str, Any],
            request: dict[str, Any], summary: HarvestSummary, method: str | None = None) -> None:  # fmt: skip
    try:
        harvest_total: int | None = minor(answer["amount"], invoice["exponent"])
    except (KeyError, ValueError):
        harvest_total = None
    reason = None
    markup = int(request.get("markup_minor") or 0)  # added as its own line right after an import
    if harvest_total != invoice["total_minor"] - markup:
        reason = f"Harvest's invoice totals {answer.get('amount')}, closeout's {invoice['total_minor']} minor units"
        if markup:
            reason += f" of which {markup} expense markup, added as its own line"
    response = {"harvest_invoice_id": answer["id"], "number": answer.get("number"), "state": answer.get("state"),
                "amount_minor": harvest_total, "line_items": len(answer.get("line_items") or [])}  # fmt: skip
    records.complete(conn, row, status="done", external_id=str(answer["id"]), response=response, reason=reason,
                     method=method)  # fmt: skip
    if row.remirrors:
        records.event(conn, row, "remirrored", f"mirrored again as Harvest invoice {answer['id']}")
    gaps = [tuple(g) for g in request.get("gap_items") or []]
    summary.gaps += records.record_gaps(conn, source=SOURCE, invoice_id=invoice["invoice_id"], items=gaps,
                                        reason=str(request.get("gap_reason") or ""))  # fmt: skip
    conn.commit()
    if request.get("method") == "import":
        summary.imported += 1
    elif request.get("method") == "line_items":
        summary.explicit += 1


# -- state, payments, credit notes ------------------------------------------------------------------------------
def _mark_sent_in_harvest(conn: psycopg.Connection, writer: HarvestWriter, row_: dict[str, Any],
                          summary: HarvestSummary) -> None:  # fmt: skip
    invoice_id, harvest_id = row_["invoice_id"], row_["tracker_invoice_id"]
    row = records.plan(conn, source=SOURCE, object_kind="message", closeout_ref=f"{invoice_id}/send",
                       invoice_id=invoice_id, writeback_key="send", request={"event_type": "send"})  # fmt: skip
    conn.commit()
    if row.status == "sent":
        current = writer.get(f"invoices/{harvest_id}")
        if current is not None and current.get("state") != "draft":
            records.event(conn, row, "found_after_lost_answer",
                          f"Harvest invoice {harvest_id} already {current['state']}")
            records.complete(conn, row, status="done", response={"state": current["state"]}, method="lookup")
            conn.commit()
            summary.sent += 1
            return
    records.mark_sent(conn, row, method="message", request={"event_type": "send", "harvest_invoice_id": harvest_id})
    answer = writer.write("POST", f"invoices/{harvest_id}/messages", {"event_type": "send"})
    records.complete(conn, row, status="done", external_id=str((answer or {}).get("id") or "") or None,
                     response={"event_type": "send"})  # fmt: skip
    conn.commit()
    summary.sent += 1


def _record_payment(conn: psycopg.Connection, writer: HarvestWriter, payment: dict[str, Any],
                    summary: HarvestSummary) -> None:  # fmt: skip
    harvest_id = payment["tracker_invoice_id"]
    key = f"Stripe payment {payment['payment_ref']}"
    amount = wire_amount(payment["amount_minor"], payment["exponent"])
    row = records.plan(conn, source=SOURCE, object_kind="payment", closeout_ref=payment["payment_ref"],
                       invoice_id=payment["invoice_id"], writeback_key=key,
                       request={"amount_minor": payment["amount_minor"]})  # fmt: skip
    conn.commit()
    if row.status == "sent":
        found = next((p for p in writer.nested_listing(f"invoices/{harvest_id}/payments", "invoice_payments")
                      if key in str(p.get("notes") or "")), None)  # fmt: skip
        if found is not None:
            records.event(conn, row, "found_after_lost_answer", f"Harvest payment {found['id']} found by its notes")
            answered = {"amount": str(found["amount"]), "paid_date": found.get("paid_date")}
            records.complete(conn, row, status="done", external_id=str(found["id"]), method="lookup", response=answered)
            conn.commit()
            summary.payments += 1
            return
    body = {"amount": amount, "paid_date": payment["occurred_at"].date().isoformat(),
            "notes": f"{key} (closeout invoice {payment['invoice_id']})"}  # fmt: skip
    records.mark_sent(conn, row, method="payment", request={"amount_minor": payment["amount_minor"],
                                                          "paid_date": body["paid_date"],
                                                          "harvest_invoice_id": harvest_id})  # fmt: skip
    answer = writer.write("POST", f"invoices/{harvest_id}/payments", body)
    assert answer is not None
    records.complete(conn, row, status="done", external_id=str(answer["id"]),
                     response={"amount": str(answer["amount"]), "paid_date": answer.get("paid_date")})  # fmt: skip
    conn.commit()
    summary.payments += 1


def _reflect_credit_note(conn: psycopg.Connection, writer: HarvestWriter, note: dict[str, Any],
                         summary: HarvestSummary) -> None:  # fmt: skip
    """A credit note as a negative line item (Harvest has no credit notes): the amount due drops by the credit."""
    key = f"Credit note {note['number'] or note['credit_note_id']} ({note['credit_note_id']})"
    row = records.plan(conn, source=SOURCE, object_kind="credit_note", closeout_ref=note["credit_note_id"],
                       invoice_id=note["invoice_id"], writeback_key=key,
                       request={"amount_minor": note["amount_minor"]})  # fmt: skip
    conn.commit()
    _append_line(conn, writer, row, harvest_id=note["tracker_invoice_id"], description=key,
                 marker=note["credit_note_id"], amount_minor=-note["amount_minor"], exponent=note["exponent"],
                 method="negative_line_item", label="credit line")  # fmt: skip
    summary.credit_notes += 1


def _add_markup_line(conn: psycopg.Connection, writer: HarvestWriter, invoice: dict[str, Any],
                     summary: HarvestSummary) -> None:  # fmt: skip
    """The expense markup of an imported invoice as one line: Harvest's import billed the expenses at cost."""
    invoice_id = invoice["invoice_id"]
    key = f"Expense markup (closeout invoice {invoice_id})"
    row = records.plan(conn, source=SOURCE, object_kind="credit_note", closeout_ref=f"{invoice_id}/markup",
                       invoice_id=invoice_id, writeback_key=key,
                       request={"amount_minor": invoice["markup_minor"]})  # fmt: skip
    conn.commit()
    _append_line(conn, writer, row, harvest_id=invoice["tracker_invoice_id"], description=key, marker=key,
                 amount_minor=invoice["markup_minor"], exponent=invoice["exponent"], method="markup_line_item",
                 label="markup line")  # fmt: skip
    summary.markups += 1


def _append_line(conn: psycopg.Connection, writer: HarvestWriter, row: records.Row, *, harvest_id: str,
                 description: str, marker: str, amount_minor: int, exponent: int, method: str,
                 label: str) -> None:  # fmt: skip
    """Append one line item to a mirrored Harvest invoice (credit notes, expense markup), exactly once.

    A row found 'sent' lost its answer: the line is looked up on the invoice by ``marker`` in its description
    first, and only when it is absent is the PATCH made again (Harvest has no idempotency keys)."""
    if row.status == "sent":
        current = writer.get(f"invoices/{harvest_id}") or {}
        found = next((li for li in current.get("line_items") or [] if marker in str(li.get("description") or "")),
                     None)  # fmt: skip
        if found is not None:
            records.event(conn, row, "found_after_lost_answer", f"{label} {found['id']} found by its description")
            records.complete(conn, row, status="done", external_id=str(found["id"]), method="lookup",
                             response={"amount": str(found["amount"])})  # fmt: skip
            conn.commit()
            return
    price = wire_amount(abs(amount_minor), exponent)
    item = {"kind": "Service", "description": description, "quantity": "1",
            "unit_price": price if amount_minor >= 0 else "-" + price}  # fmt: skip
    records.mark_sent(conn, row, method=method, request={"amount_minor": amount_minor,
                                                         "harvest_invoice_id": harvest_id})  # fmt: skip
    answer = writer.write("PATCH", f"invoices/{harvest_id}", {"line_items": [item]})
    assert answer is not None
    line = next((li for li in answer.get("line_items") or [] if li.get("description") == description), None)
    answered = {"amount": str(answer.get("amount")), "due_amount": str(answer.get("due_amount"))}
    records.complete(conn, row, status="done", external_id=str(line["id"]) if line else None, response=answered)
    conn.commit()
