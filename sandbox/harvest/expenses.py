"""Harvest expenses and expense categories for the sandbox: ``GET /v2/expenses`` and ``GET /v2/expense_categories``
in the documented shapes (paging envelope, ``updated_since``/``from``/``to``/``is_billed``/``client_id``/
``project_id``/``user_id`` filters), plus the helpers tests use to add, edit and delete expenses.

Expenses are listed like time entries: ``spent_date`` descending, then ``id`` descending. Like time entries,
a deleted expense is simply gone. ``total_cost`` is in the client's currency; a unit-priced category
(mileage) computes it from ``units`` x ``unit_price`` unless the caller sets it. Records injected with
``put_raw_expense`` are served verbatim and never filtered out on a field they do not carry usably.
"""

from __future__ import annotations

import copy
import json
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from sandbox.harvest.data import dumps, normalize_timestamp

if TYPE_CHECKING:
    from sandbox.harvest.server import HarvestSandbox

__all__ = ["DEFAULT_CATEGORIES", "ExpenseBook"]

LOCKED_INVOICED = "Expense is invoiced."
LOCKED_APPROVED = "Expense is approved."

# (id, name, unit_name, unit_price): Harvest's starter categories, one of them unit-priced
DEFAULT_CATEGORIES: tuple[tuple[int, str, str | None, float | None], ...] = (
    (4195926, "Meals", None, None),
    (4195927, "Lodging", None, None),
    (4195928, "Travel", None, None),
    (4195929, "Mileage", "mile", 0.655),
    (4195930, "Software", None, None),
)


def _money(value: Decimal) -> float:
    """A JSON number with at most two decimals whose text is exactly ``value`` (float repr round-trips)."""
    return float(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


class ExpenseBook:
    """The expenses of one sandbox account; shares the sandbox's lock, clock and references."""

    def __init__(self, sandbox: HarvestSandbox) -> None:
        self._sandbox = sandbox
        self._expenses: dict[int, Any] = {}  # key -> object (raw keys are negative)
        self._next_raw = -1
        self._next_id = 2_100_000_000
        self._next_invoice = 50_000_000
        stamp = "2020-01-01T00:00:00Z"
        self.categories: dict[int, dict[str, Any]] = {
            cid: {"id": cid, "name": name, "unit_name": unit, "unit_price": price, "is_active": True,
                  "created_at": stamp, "updated_at": stamp}
            for cid, name, unit, price in DEFAULT_CATEGORIES
        }  # fmt: skip

    # ------------------------------------------------------------------ helpers for tests

    def snapshot(self) -> list[Any]:
        """Every stored expense (raw ones included) as served, in listing order."""
        with self._sandbox._lock:
            return [copy.deepcopy(self._expenses[k]) for k in self._listing_order()]

    def create_expense(self, **fields: Any) -> dict[str, Any]:
        """Add an expense. ``project_id``/``user_id``/``expense_category_id`` pick the references (defaults: the
        first project, its first member, Meals); ``total_cost`` defaults to 10.00 (or units x unit price)."""
        sandbox = self._sandbox
        with sandbox._lock:
            expense_id = fields.pop("id", None)
            if expense_id is None:
                self._next_id += 11
                expense_id = self._next_id
            if not isinstance(expense_id, int) or isinstance(expense_id, bool) or expense_id <= 0:
                raise ValueError("id must be a positive integer")
            if expense_id in self._expenses:
                raise ValueError(f"expense {expense_id} already exists")
            stamp = sandbox._stamp()
            expense: dict[str, Any] = {
                "id": expense_id,
                "notes": None,
                "total_cost": 10.0,
                "units": 1.0,
                "is_closed": False,
                "is_locked": False,
                "is_billed": False,
                "locked_reason": None,
                "spent_date": sandbox._clock().date().isoformat(),
                "created_at": stamp,
                "updated_at": stamp,
                "billable": True,
                "receipt": None,
                "user": None,
                "user_assignment": None,
                "project": None,
                "expense_category": None,
                "client": None,
                "invoice": None,
            }
            fields.setdefault("expense_category_id", DEFAULT_CATEGORIES[0][0])
            self._apply(expense, fields, creating=True)
            self._expenses[expense_id] = expense
            sandbox._version += 1
            return copy.deepcopy(expense)

    def update_expense(self, expense_id: int, **fields: Any) -> dict[str, Any]:
        """Change fields of an expense and bump ``updated_at`` (unless given)."""
        sandbox = self._sandbox
        with sandbox._lock:
            if expense_id not in self._expenses or expense_id <= 0:
                raise KeyError(expense_id)
            expense = self._expenses[expense_id]
            expense["updated_at"] = sandbox._stamp()
            self._apply(expense, fields, creating=False)
            sandbox._version += 1
            return copy.deepcopy(expense)

    def delete_expense(self, expense_id: int) -> None:
        """Remove an expense without a trace (raw keys, negative, work too)."""
        with self._sandbox._lock:
            del self._expenses[expense_id]
            self._sandbox._version += 1

    def put_raw_expense(self, raw: Any) -> int:
        """Store any JSON value verbatim (to inject bad records); returns its key for ``delete_expense``."""
        json.dumps(raw)  # refuse what could never be served
        with self._sandbox._lock:
            key = self._next_raw
            self._next_raw -= 1
            self._expenses[key] = copy.deepcopy(raw)
            self._sandbox._version += 1
            return key

    # ------------------------------------------------------------------ internals

    def _apply(self, expense: dict[str, Any], fields: dict[str, Any], *, creating: bool) -> None:
        sandbox = self._sandbox
        fields = {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in fields.items()}
        project_id = fields.pop("project_id", None)
        user_id = fields.pop("user_id", None)
        category_id = fields.pop("expense_category_id", None)
        if creating or project_id is not None or user_id is not None:
            project_id = project_id or (expense.get("project") or {}).get("id") or next(iter(sandbox._projects))
            project = sandbox._projects.get(project_id)
            if project is None:
                raise ValueError(f"unknown project {project_id}")
            if user_id is None:
                user_id = (expense.get("user") or {}).get("id")
            if user_id is None:
                members = [u for (u, p) in sandbox._user_assignments if p == project_id]
                user_id = members[0] if members else next(iter(sandbox._users))
            user = sandbox._users.get(user_id)
            if user is None:
                raise ValueError(f"unknown user {user_id}")
            client = project["client"]
            assignment = sandbox._user_assignments.get((user_id, project_id))
            expense["project"] = {"id": project_id, "name": project["name"], "code": project["code"]}
            expense["client"] = {"id": client["id"], "name": client["name"], "currency": client["currency"]}
            expense["user"] = {"id": user_id, "name": f"{user['first_name']} {user['last_name']}"}
            expense["user_assignment"] = copy.deepcopy(assignment)
        if category_id is not None:
            category = self.categories.get(category_id)
            if category is None:
                raise ValueError(f"unknown expense category {category_id}")
            expense["expense_category"] = {k: category[k] for k in ("id", "name", "unit_price", "unit_name")}
        expense.update(fields)
        category = expense.get("expense_category") or {}
        if category.get("unit_price") is not None and "total_cost" not in fields and (
            "units" in fields or category_id is not None
        ):
            units = Decimal(str(expense.get("units") or 0))
            expense["total_cost"] = _money(units * Decimal(str(category["unit_price"])))
        if "is_billed" in fields and "invoice" not in fields:
            if not fields["is_billed"]:
                expense["invoice"] = None
            elif not expense.get("invoice"):
                self._next_invoice += 3
                expense["invoice"] = {"id": self._next_invoice, "number": str(self._next_invoice % 100_000)}
        if ("is_closed" in fields or "is_billed" in fields) and "is_locked" not in fields:
            billed, closed = bool(expense.get("is_billed")), bool(expense.get("is_closed"))
            expense["is_locked"] = billed or closed
            if "locked_reason" not in fields:
                expense["locked_reason"] = LOCKED_INVOICED if billed else LOCKED_APPROVED if closed else None

    def _listing_order(self) -> list[int]:
        """Keys in listing order, recomputed only after a change (a listing pages through a fixed order)."""
        version = self._sandbox._version
        if getattr(self, "_order_cache", (None, None))[0] == version:
            return self._order_cache[1]

        def key(k: int) -> tuple[str, int]:
            obj = self._expenses[k]
            spent = obj.get("spent_date") if isinstance(obj, dict) else None
            ident = obj.get("id") if isinstance(obj, dict) else None
            spent = spent if isinstance(spent, str) else "~"  # unusable dates list first
            return (spent, ident if isinstance(ident, int) and not isinstance(ident, bool) else 0)

        order = sorted(self._expenses, key=key, reverse=True)
        self._order_cache = (version, order)
        return order

    def _selected(self, filters: dict[str, Any]) -> list[Any]:
        """The expenses a filter selects, in listing order; kept per (state version, filters) so paging
        through a large listing does not re-filter every expense for every page."""
        signature = (self._sandbox._version, tuple(sorted(filters.items())))
        cached = getattr(self, "_selection_cache", None)
        if cached is not None and cached[0] == signature:
            return cached[1]
        expenses = self._expenses
        selected = [expenses[k] for k in self._listing_order() if self._matches(expenses[k], filters)]
        self._selection_cache = (signature, selected)
        return selected

    def _matches(self, obj: Any, filters: dict[str, Any]) -> bool:
        if not isinstance(obj, dict):
            return True
        since = filters.get("updated_since")
        if since is not None:
            updated = normalize_timestamp(obj.get("updated_at"))
            if updated is not None and updated < since:
                return False
        spent = obj.get("spent_date") if isinstance(obj.get("spent_date"), str) else None
        if spent is not None and filters.get("from") is not None and spent < filters["from"]:
            return False
        if spent is not None and filters.get("to") is not None and spent > filters["to"]:
            return False
        billed = obj.get("is_billed")
        if "is_billed" in filters and isinstance(billed, bool) and billed != filters["is_billed"]:
            return False
        for name in ("client", "project", "user"):
            wanted = filters.get(f"{name}_id")
            ref = obj.get(name)
            if wanted is not None and isinstance(ref, dict) and isinstance(ref.get("id"), int) and ref["id"] != wanted:
                return False
        return True

    # ------------------------------------------------------------------ HTTP

    def control(self, method: str, parts: list[str], args: Any) -> tuple | None:
        """``/_sandbox/expenses...``: the helpers above over HTTP, for harnesses in another process."""
        from sandbox.harvest.server import _json

        match method, parts:
            case "GET", ["expenses"]:
                return _json(200, self.snapshot())
            case "POST", ["expenses"]:
                return _json(201, self.create_expense(**args))
            case "PATCH", ["expenses", ident]:
                return _json(200, self.update_expense(int(ident), **args))
            case "DELETE", ["expenses", ident]:
                self.delete_expense(int(ident))
                return _json(200, {"deleted": int(ident)})
            case "POST", ["raw_expenses"]:
                return _json(201, {"key": self.put_raw_expense(args)})
        return None

    def listing(self, resource: str, params: dict[str, str], pairs: list[tuple[str, str]], host: str) -> tuple:
        """One page of ``/v2/expenses`` or ``/v2/expense_categories`` in Harvest's envelope."""
        from sandbox.harvest import server  # the envelope and query parsing the other listings use

        page, per_page = server._paging(params)
        filters: dict[str, Any] = {}
        if "updated_since" in params:
            filters["updated_since"] = server._parse_since(params["updated_since"])
        with self._sandbox._lock:
            if resource == "expense_categories":
                active = server._parse_bool("is_active", params["is_active"]) if "is_active" in params else None
                selected = [
                    c for c in sorted(self.categories.values(), key=lambda c: c["id"], reverse=True)
                    if (active is None or c["is_active"] == active)
                    and ("updated_since" not in filters or c["updated_at"] >= filters["updated_since"])
                ]  # fmt: skip
            else:
                for name in ("from", "to"):
                    if name in params:
                        filters[name] = server._parse_date(name, params[name])
                if "is_billed" in params:
                    filters["is_billed"] = server._parse_bool("is_billed", params["is_billed"])
                for name in ("client_id", "project_id", "user_id"):
                    if name in params:
                        filters[name] = server._parse_int(name, params[name])
                selected = self._selected(filters)
            body = dumps(
                {
                    resource: selected[(page - 1) * per_page : page * per_page],
                    **server._page_meta(resource, len(selected), page, per_page, pairs, host),
                }
            )
        return 200, body, []

    def get(self, resource: str, ident: str) -> Any | None:
        """One expense or category by id, or None."""
        if not ident.isdigit():
            return None
        with self._sandbox._lock:
            store = self.categories if resource == "expense_categories" else self._expenses
            obj = store.get(int(ident))
            return None if obj is None else dumps(obj)
