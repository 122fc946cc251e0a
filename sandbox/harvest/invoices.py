"""Harvest invoices for the sandbox: ``/v2/invoices`` (explicit ``line_items`` or ``line_items_import``),
``/v2/invoices/{id}/payments`` and ``/v2/invoices/{id}/messages``, in the documented shapes.

What the write-back relies on, as Harvest documents it:

* ``line_items_import`` bills the projects' *uninvoiced billable* time and expenses in the range (approval not
  required) and marks each ``is_billed`` with ``invoice{id, number}``; explicit ``line_items`` mark nothing.
  There is no other way to set ``is_billed``. Deleting an invoice un-bills its items.
* ``number`` is unique per account (422 "Number has already been taken"); without one the next number is used.
* A payment (``amount``, ``paid_at`` or ``paid_date``, ``notes``) reduces ``due_amount``; the invoice becomes
  ``paid`` when nothing is due. A message with ``event_type`` ``send``, ``close``, ``re-open`` or ``draft``
  changes the state without e-mailing anyone.
* Validation errors answer 422 with ``{"message": ...}``.

Amounts are kept as ``Decimal`` and served as JSON numbers (as Harvest serves them).
"""

from __future__ import annotations

import copy
import json
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from sandbox.harvest.data import dumps

if TYPE_CHECKING:
    from sandbox.harvest.server import HarvestSandbox

__all__ = ["InvoiceBook"]

CENT = Decimal("0.01")
TIME_SUMMARIES = ("project", "task", "people", "detailed")
EXPENSE_SUMMARIES = ("project", "category", "people", "detailed")
EVENTS = {"send": "open", "close": "closed", "re-open": "open", "draft": "draft"}
Response = tuple[int, bytes, list[tuple[str, str]]]


class Unprocessable(Exception):
    """Harvest's 422: the body names what is wrong."""


def _num(value: Decimal) -> float | int:
    """A JSON number whose text is exactly ``value`` (two decimals at most, as Harvest serves money)."""
    value = value.quantize(CENT, rounding=ROUND_HALF_UP) if value != value.to_integral() else value
    return int(value) if value == value.to_integral() else float(value)


def _dec(name: str, value: Any) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise Unprocessable(f"{name} is not a number")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise Unprocessable(f"{name} is not a number") from None
    if not number.is_finite():
        raise Unprocessable(f"{name} is not a number")
    return number


def _date(name: str, value: Any) -> str:
    try:
        return date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise Unprocessable(f"{name} is not a date (YYYY-MM-DD)") from None


class InvoiceBook:
    """The invoices of one sandbox account; shares the sandbox's lock, clock, entries and expenses."""

    def __init__(self, sandbox: HarvestSandbox) -> None:
        self._sandbox = sandbox
        self._invoices: dict[int, dict[str, Any]] = {}
        self._items: dict[int, list[tuple[str, int]]] = {}  # invoice id -> [("time"|"expense", id)] it billed
        self._payments: dict[int, list[dict[str, Any]]] = {}
        self._messages: dict[int, list[dict[str, Any]]] = {}
        self._next_id = 13_000_000
        self._next_line = 53_000_000
        self._next_payment = 10_000_000
        self._next_message = 27_000_000
        self._next_number = 1000

    # -- helpers for tests (a person at the Harvest web app) --------------------------------------------------
    def snapshot(self) -> list[dict[str, Any]]:
        """Every invoice as served, newest first."""
        with self._sandbox._lock:
            return [self._render(i) for i in sorted(self._invoices, reverse=True)]

    def get(self, invoice_id: int) -> dict[str, Any]:
        with self._sandbox._lock:
            return self._render(invoice_id)

    def payments(self, invoice_id: int) -> list[dict[str, Any]]:
        with self._sandbox._lock:
            return copy.deepcopy(self._payments.get(invoice_id, []))

    def delete(self, invoice_id: int) -> None:
        """Delete an invoice (as someone does by hand): its time and expenses are unbilled again."""
        with self._sandbox._lock:
            if invoice_id not in self._invoices:
                raise KeyError(invoice_id)
            for kind, item_id in self._items.pop(invoice_id, []):
                self._mark(kind, item_id, None)
            del self._invoices[invoice_id]
            self._payments.pop(invoice_id, None)
            self._messages.pop(invoice_id, None)
            self._sandbox._version += 1

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /v2/invoices`` from Python; raises ``Unprocessable`` as the API answers 422."""
        with self._sandbox._lock:
            return self._render(self._create(body))

    # -- HTTP -------------------------------------------------------------------------------------------------
    def handle(self, method: str, parts: list[str], params: dict[str, str], pairs: list[tuple[str, str]],
               body: bytes, host: str) -> Response:  # fmt: skip
        """Everything under ``/v2/invoices``."""
        from sandbox.harvest.server import _json

        try:
            args: Any = json.loads(body) if body.strip() else {}
        except ValueError:
            return _json(400, {"status": 400, "message": "The body is not valid JSON."})
        if not isinstance(args, dict):
            return _json(400, {"status": 400, "message": "The body must be a JSON object."})
        not_found = _json(404, {"status": 404, "error": "Not Found"})
        sandbox = self._sandbox
        try:
            with sandbox._lock:
                ident = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
                if len(parts) > 1 and (ident is None or ident not in self._invoices):
                    return not_found
                match method, parts[2:] if len(parts) > 1 else None:
                    case "GET", None:
                        return self._listing(params, pairs, host)
                    case "POST", None:
                        return _json(201, self._render(self._create(args)))
                    case "GET", []:
                        return _json(200, self._render(ident))
                    case "PATCH", []:
                        self._update(ident, args)
                        return _json(200, self._render(ident))
                    case "DELETE", []:
                        self.delete(ident)
                        return 200, b"", []
                    case "GET", ["payments"]:
                        return self._sub_listing("invoice_payments", self._payments.get(ident, []), params, pairs,
                                                 host, f"invoices/{ident}/payments")  # fmt: skip
                    case "POST", ["payments"]:
                        return _json(201, self._pay(ident, args))
                    case "DELETE", ["payments", pid] if pid.isdigit():
                        before = len(self._payments.get(ident, []))
                        self._payments[ident] = [p for p in self._payments.get(ident, []) if p["id"] != int(pid)]
                        if len(self._payments[ident]) == before:
                            return not_found
                        self._settle(ident)
                        return 200, b"", []
                    case "GET", ["messages"]:
                        return self._sub_listing("invoice_messages", self._messages.get(ident, []), params, pairs,
                                                 host, f"invoices/{ident}/messages")  # fmt: skip
                    case "POST", ["messages"]:
                        return _json(201, self._message(ident, args))
                return _json(405 if len(parts) <= 3 else 404, {"status": 405, "error": "Method Not Allowed"})
        except Unprocessable as exc:
            return _json(422, {"message": str(exc)})

    # -- internals ----------------------------------------------------------------------------------------------
    def _create(self, args: dict[str, Any]) -> int:
        sandbox = self._sandbox
        client_id = args.get("client_id")
        client = sandbox._clients.get(client_id) if isinstance(client_id, int) else None
        if client is None:
            raise Unprocessable("Client can't be blank" if client_id is None else "Client is invalid")
        number = args.get("number")
        if number is None:
            while any(i["number"] == str(self._next_number) for i in self._invoices.values()):
                self._next_number += 1
            number = str(self._next_number)
            self._next_number += 1
        number = str(number)
        if not number.strip():
            raise Unprocessable("Number can't be blank")
        if any(i["number"] == number for i in self._invoices.values()):
            raise Unprocessable("Number has already been taken")
        if "line_items" in args and "line_items_import" in args:
            raise Unprocessable("Provide either line_items or line_items_import, not both")
        self._next_id += 7
        invoice_id = self._next_id
        stamp = sandbox._stamp()
        today = sandbox._clock().date().isoformat()
        issue = _date("issue_date", args["issue_date"]) if args.get("issue_date") else today
        invoice: dict[str, Any] = {
            "id": invoice_id, "client_key": f"ck{invoice_id:x}", "number": number,
            "purchase_order": str(args.get("purchase_order") or ""), "amount": Decimal(0), "due_amount": Decimal(0),
            "tax": args.get("tax"), "tax_amount": 0, "tax2": args.get("tax2"), "tax2_amount": 0,
            "discount": args.get("discount"), "discount_amount": 0, "subject": args.get("subject"),
            "notes": args.get("notes"), "currency": str(args.get("currency") or client["currency"]),
            "state": "draft", "period_start": None, "period_end": None, "issue_date": issue,
            "due_date": _date("due_date", args["due_date"]) if args.get("due_date") else issue,
            "payment_term": args.get("payment_term") or "upon receipt", "sent_at": None, "paid_at": None,
            "paid_date": None, "closed_at": None, "recurring_invoice_id": None, "created_at": stamp,
            "updated_at": stamp, "client": {"id": client["id"], "name": client["name"]}, "estimate": None,
            "retainer": None, "creator": {"id": next(iter(sandbox._users)), "name": "Sandbox API"}, "line_items": [],
        }  # fmt: skip
        items: list[tuple[str, int]] = []
        if "line_items_import" in args:
            lines, items, period = self._import(client_id, args["line_items_import"])
            invoice["line_items"] = lines
            invoice["period_start"], invoice["period_end"] = period
        else:
            for raw in args.get("line_items") or []:
                invoice["line_items"].append(self._line(raw))
        self._invoices[invoice_id] = invoice
        self._items[invoice_id] = items
        for kind, item_id in items:
            self._mark(kind, item_id, {"id": invoice_id, "number": number})
        self._settle(invoice_id)
        sandbox._version += 1
        return invoice_id

    def _line(self, raw: Any, keep_id: int | None = None) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise Unprocessable("line_items must be objects")
        if not raw.get("kind"):
            raise Unprocessable("Line items kind can't be blank")
        if raw.get("unit_price") is None:
            raise Unprocessable("Line items unit price can't be blank")
        quantity = _dec("quantity", raw.get("quantity", 1))
        price = _dec("unit_price", raw["unit_price"])
        project = None
        if raw.get("project_id") is not None:
            found = self._sandbox._projects.get(raw["project_id"])
            if found is None:
                raise Unprocessable("Line items project is invalid")
            project = {"id": found["id"], "name": found["name"], "code": found["code"]}
        if keep_id is None:
            self._next_line += 3
        return {"id": keep_id or self._next_line, "kind": str(raw["kind"]), "description": raw.get("description"),
                "quantity": quantity, "unit_price": price,
                "amount": (quantity * price).quantize(CENT, rounding=ROUND_HALF_UP),
                "taxed": bool(raw.get("taxed", False)), "taxed2": bool(raw.get("taxed2", False)),
                "project": project}  # fmt: skip

    def _import(self, client_id: int, spec: Any) -> tuple[list[dict[str, Any]], list[tuple[str, int]], tuple]:
        """The uninvoiced billable time and expenses of the projects in the ranges, summarised as asked."""
        sandbox = self._sandbox
        if not isinstance(spec, dict) or not isinstance(spec.get("project_ids"), list) or not spec["project_ids"]:
            raise Unprocessable("line_items_import needs project_ids")
        projects = set()
        for pid in spec["project_ids"]:
            project = sandbox._projects.get(pid) if isinstance(pid, int) else None
            if project is None or project["client"]["id"] != client_id:
                raise Unprocessable(f"Project {pid} is not a project of this client")
            projects.add(pid)
        groups: dict[tuple, dict[str, Any]] = {}
        items: list[tuple[str, int]] = []
        starts, ends = [], []
        for kind, summaries in (("time", TIME_SUMMARIES), ("expenses", EXPENSE_SUMMARIES)):
            part = spec.get(kind)
            if part is None:
                continue
            if not isinstance(part, dict) or part.get("summary_type") not in summaries:
                raise Unprocessable(f"{kind} summary_type must be one of {', '.join(summaries)}")
            start = _date(f"{kind}.from", part["from"]) if part.get("from") else None
            end = _date(f"{kind}.to", part["to"]) if part.get("to") else None
            for obj in (self._uninvoiced_time if kind == "time" else self._uninvoiced_expenses)(projects, start, end):
                key, description, quantity, price, amount = self._summarise(kind, part["summary_type"], obj)
                group = groups.setdefault((kind, *key), {"kind": "Service" if kind == "time" else "Product",
                                                         "description": description, "quantity": Decimal(0),
                                                         "amount": Decimal(0), "prices": set(),
                                                         "project": obj["project"]})  # fmt: skip
                group["quantity"] += quantity
                group["amount"] += amount
                group["prices"].add(price)
                items.append(("time" if kind == "time" else "expense", obj["id"]))
                starts.append(obj["spent_date"])
                ends.append(obj["spent_date"])
        lines = []
        for group in groups.values():
            self._next_line += 3
            quantity, amount = group["quantity"], group["amount"].quantize(CENT, rounding=ROUND_HALF_UP)
            price = next(iter(group["prices"])) if len(group["prices"]) == 1 else (
                (amount / quantity).quantize(CENT, rounding=ROUND_HALF_UP) if quantity else amount)
            lines.append({"id": self._next_line, "kind": group["kind"], "description": group["description"],
                          "quantity": quantity, "unit_price": price, "amount": amount, "taxed": False,
                          "taxed2": False, "project": copy.deepcopy(group["project"])})  # fmt: skip
        return lines, items, (min(starts, default=None), max(ends, default=None))

    def _uninvoiced_time(self, projects: set[int], start: str | None, end: str | None) -> list[dict[str, Any]]:
        rows = self._sandbox._rows
        out = []
        for key in sorted(k for k in rows if k > 0):
            row = rows[key]
            if row.project_id not in projects or row.is_billed or row.is_running:
                continue
            if (start and (row.spent_date or "") < start) or (end and (row.spent_date or "~") > end):
                continue
            obj = json.loads(row.body)
            if obj.get("billable") and obj.get("billable_rate") is not None:
                out.append(obj)
        return out

    def _uninvoiced_expenses(self, projects: set[int], start: str | None, end: str | None) -> list[dict[str, Any]]:
        out = []
        for key, obj in sorted(self._sandbox.expenses._expenses.items()):
            if key <= 0 or not isinstance(obj, dict) or (obj.get("project") or {}).get("id") not in projects:
                continue
            if obj.get("is_billed") or not obj.get("billable"):
                continue
            if (start and obj["spent_date"] < start) or (end and obj["spent_date"] > end):
                continue
            out.append(obj)
        return out

    def _summarise(self, kind: str, summary: str, obj: dict[str, Any]) -> tuple[tuple, str, Decimal, Decimal, Decimal]:
        project = obj["project"]
        if kind == "time":
            hours, rate = Decimal(str(obj["rounded_hours"])), Decimal(str(obj["billable_rate"]))
            amount = hours * rate
            key, text = {
                "project": ((project["id"],), f"{project['name']}"),
                "task": ((project["id"], obj["task"]["id"], rate), f"{project['name']}: {obj['task']['name']}"),
                "people": ((project["id"], obj["user"]["id"], rate), f"{project['name']}: {obj['user']['name']}"),
                "detailed": ((obj["id"],), f"{project['name']}: {obj['task']['name']} ({obj['spent_date']})"
                                           + (f" {obj['notes']}" if obj.get("notes") else "")),
            }[summary]
            return key, text, hours, rate, amount
        cost = Decimal(str(obj["total_cost"]))
        category = obj.get("expense_category") or {}
        key, text = {
            "project": ((project["id"],), f"{project['name']}: expenses"),
            "category": ((project["id"], category.get("id")), f"{project['name']}: {category.get('name')}"),
            "people": ((project["id"], obj["user"]["id"]), f"{project['name']}: {obj['user']['name']}"),
            "detailed": ((obj["id"],), f"{project['name']}: {category.get('name')} ({obj['spent_date']})"),
        }[summary]
        return key, text, Decimal(1), cost, cost

    def _mark(self, kind: str, item_id: int, invoice: dict[str, Any] | None) -> None:
        sandbox = self._sandbox
        fields = {"is_billed": invoice is not None, "invoice": invoice}
        if kind == "time":
            if item_id in sandbox._rows:
                sandbox.update_entry(item_id, **fields)
        elif item_id in sandbox.expenses._expenses:
            sandbox.expenses.update_expense(item_id, **fields)

    def _update(self, invoice_id: int, args: dict[str, Any]) -> None:
        invoice = self._invoices[invoice_id]
        if "number" in args and str(args["number"]) != invoice["number"]:
            if any(i["number"] == str(args["number"]) for i in self._invoices.values()):
                raise Unprocessable("Number has already been taken")
            invoice["number"] = str(args["number"])
        for name in ("subject", "notes", "purchase_order", "payment_term"):
            if name in args:
                invoice[name] = args[name]
        for name in ("issue_date", "due_date"):
            if name in args:
                invoice[name] = _date(name, args[name])
        for raw in args.get("line_items") or []:
            if isinstance(raw, dict) and raw.get("id") is not None:
                index = next((n for n, li in enumerate(invoice["line_items"]) if li["id"] == raw["id"]), None)
                if index is None:
                    raise Unprocessable(f"Line item {raw['id']} is not on this invoice")
                if raw.get("_destroy"):
                    del invoice["line_items"][index]
                else:
                    merged = {**self._wire_line(invoice["line_items"][index]), **raw}
                    invoice["line_items"][index] = self._line(merged, keep_id=raw["id"])
            else:
                invoice["line_items"].append(self._line(raw))
        invoice["updated_at"] = self._sandbox._stamp()
        self._settle(invoice_id)

    @staticmethod
    def _wire_line(line: dict[str, Any]) -> dict[str, Any]:
        return {"kind": line["kind"], "description": line["description"], "quantity": line["quantity"],
                "unit_price": line["unit_price"], "project_id": (line["project"] or {}).get("id")}  # fmt: skip

    def _pay(self, invoice_id: int, args: dict[str, Any]) -> dict[str, Any]:
        amount = _dec("amount", args.get("amount"))
        if amount <= 0:
            raise Unprocessable("Amount must be greater than 0")
        invoice = self._invoices[invoice_id]
        if invoice["state"] == "draft":
            raise Unprocessable("Payments can't be recorded on a draft invoice")
        stamp = self._sandbox._stamp()
        paid_date = _date("paid_date", args["paid_date"]) if args.get("paid_date") else (
            str(args["paid_at"])[:10] if args.get("paid_at") else self._sandbox._clock().date().isoformat())
        self._next_payment += 3
        payment = {"id": self._next_payment, "amount": _num(amount), "paid_at": args.get("paid_at") or
                   f"{paid_date}T00:00:00Z", "paid_date": paid_date, "recorded_by": "Sandbox API",
                   "recorded_by_email": "api@example.com", "notes": args.get("notes"), "transaction_id": None,
                   "created_at": stamp, "updated_at": stamp, "payment_gateway": {"id": None, "name": None}}  # fmt: skip
        self._payments.setdefault(invoice_id, []).append(payment)
        self._settle(invoice_id)
        return copy.deepcopy(payment)

    def _message(self, invoice_id: int, args: dict[str, Any]) -> dict[str, Any]:
        invoice = self._invoices[invoice_id]
        event = args.get("event_type")
        if event is not None and event not in EVENTS:
            raise Unprocessable("event_type must be one of send, close, re-open, draft")
        if event is None and not args.get("recipients"):
            raise Unprocessable("Recipients can't be blank")
        stamp = self._sandbox._stamp()
        if event == "re-open" and invoice["state"] != "closed":
            raise Unprocessable("Only a closed invoice can be re-opened")
        if event in (None, "send"):
            if invoice["state"] == "draft":
                invoice["state"] = "open"
            invoice["sent_at"] = invoice["sent_at"] or stamp
        else:
            invoice["state"] = EVENTS[event]
            invoice["closed_at"] = stamp if event == "close" else None
            if event == "draft":
                invoice["sent_at"] = None
        invoice["updated_at"] = stamp
        self._settle(invoice_id)
        self._next_message += 3
        message = {"id": self._next_message, "sent_by": "Sandbox API", "sent_by_email": "api@example.com",
                   "sent_from": "Sandbox API", "sent_from_email": "api@example.com",
                   "recipients": args.get("recipients") or [], "subject": args.get("subject"),
                   "body": args.get("body"), "include_link_to_client_invoice": False, "attach_pdf": False,
                   "send_me_a_copy": False, "thank_you": False, "event_type": event, "reminder": False,
                   "send_reminder_on": None, "created_at": stamp, "updated_at": stamp}  # fmt: skip
        self._messages.setdefault(invoice_id, []).append(message)
        return copy.deepcopy(message)

    def _settle(self, invoice_id: int) -> None:
        """Amount from the lines; due amount after payments; paid when nothing is due (open/paid only)."""
        invoice = self._invoices[invoice_id]
        amount = sum((li["amount"] for li in invoice["line_items"]), Decimal(0))
        paid = sum((Decimal(str(p["amount"])) for p in self._payments.get(invoice_id, [])), Decimal(0))
        invoice["amount"], invoice["due_amount"] = amount, amount - paid
        payments = self._payments.get(invoice_id, [])
        if invoice["state"] in ("open", "paid"):
            if payments and invoice["due_amount"] <= 0:
                invoice["state"] = "paid"
                invoice["paid_at"] = payments[-1]["paid_at"]
                invoice["paid_date"] = payments[-1]["paid_date"]
            else:
                invoice["state"], invoice["paid_at"], invoice["paid_date"] = "open", None, None

    def _render(self, invoice_id: int) -> dict[str, Any]:
        invoice = copy.deepcopy(self._invoices[invoice_id])
        for name in ("amount", "due_amount"):
            invoice[name] = _num(invoice[name])
        for line in invoice["line_items"]:
            for name in ("quantity", "unit_price", "amount"):
                line[name] = _num(line[name])
        return invoice

    def _listing(self, params: dict[str, str], pairs: list[tuple[str, str]], host: str) -> Response:
        from sandbox.harvest import server

        page, per_page = server._paging(params)
        client_id = server._parse_int("client_id", params["client_id"]) if "client_id" in params else None
        project_id = server._parse_int("project_id", params["project_id"]) if "project_id" in params else None
        since = server._parse_since(params["updated_since"]) if "updated_since" in params else None
        start = server._parse_date("from", params["from"]) if "from" in params else None
        end = server._parse_date("to", params["to"]) if "to" in params else None
        state = params.get("state")
        selected = []
        for invoice in sorted(self._invoices.values(), key=lambda i: (i["issue_date"], i["id"]), reverse=True):
            if client_id is not None and invoice["client"]["id"] != client_id:
                continue
            if project_id is not None and all((li["project"] or {}).get("id") != project_id
                                              for li in invoice["line_items"]):  # fmt: skip
                continue
            if (since and invoice["updated_at"] < since) or (start and invoice["issue_date"] < start):
                continue
            if (end and invoice["issue_date"] > end) or (state and invoice["state"] != state):
                continue
            selected.append(invoice["id"])
        body = {"invoices": [self._render(i) for i in selected[(page - 1) * per_page : page * per_page]],
                **server._page_meta("invoices", len(selected), page, per_page, pairs, host)}  # fmt: skip
        return 200, dumps(body), []

    def _sub_listing(self, name: str, items: list[dict[str, Any]], params: dict[str, str],
                     pairs: list[tuple[str, str]], host: str, resource: str) -> Response:  # fmt: skip
        from sandbox.harvest import server

        page, per_page = server._paging(params)
        newest = sorted(items, key=lambda p: p["id"], reverse=True)
        body = {name: newest[(page - 1) * per_page : page * per_page],
                **server._page_meta(resource, len(newest), page, per_page, pairs, host)}  # fmt: skip
        return 200, dumps(body), []
