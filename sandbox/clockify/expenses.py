"""Clockify expenses for the sandbox: ``GET /workspaces/{ws}/expenses`` (paged with ``page``/``page-size``,
filter ``user-id``; the documented ``ExpensesAndTotalsDtoV1`` envelope), ``GET .../expenses/{id}`` and
``GET .../expenses/categories``, plus helpers tests use to add, edit and delete expenses.

Amounts are integers in minor units of the workspace currency (cents), as trackers.md records; a unit-priced
category (``hasUnitPrice``, ``priceInCents``) computes ``total`` as quantity x price unless given. A deleted
expense is gone (Clockify announces it only by webhook). Listings are newest first (date, then id).
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from sandbox.clockify.data import dumps

if TYPE_CHECKING:
    from sandbox.clockify.server import ClockifySandbox

__all__ = ["ClockifyExpenseBook"]

MAX_PAGE_SIZE = 1000
# (id, name, unit, price in cents or None)
DEFAULT_CATEGORIES: tuple[tuple[str, str, str | None, int | None], ...] = (
    ("6650c0ffee00000000000001", "Travel", None, None),
    ("6650c0ffee00000000000002", "Meals", None, None),
    ("6650c0ffee00000000000003", "Mileage", "km", 42),
)


class ClockifyExpenseBook:
    """The expenses of the sandbox workspace; shares the sandbox's lock, ids and references."""

    def __init__(self, sandbox: ClockifySandbox) -> None:
        self._sandbox = sandbox
        self._expenses: dict[str, Any] = {}  # id (or 'raw:N') -> object
        self._raw = 0
        self._changes = 0  # bumped by every change: the listing order is recomputed only then
        ws = sandbox.workspace_id
        self.categories: dict[str, dict[str, Any]] = {
            cid: {"id": cid, "name": name, "unit": unit, "priceInCents": price, "hasUnitPrice": price is not None,
                  "archived": False, "workspaceId": ws}
            for cid, name, unit, price in DEFAULT_CATEGORIES
        }  # fmt: skip

    def snapshot(self) -> list[Any]:
        with self._sandbox._lock:
            return [copy.deepcopy(self._expenses[k]) for k in self._order()]

    def create_expense(self, **fields: Any) -> dict[str, Any]:
        """Add an expense. Fields use Clockify's names: ``userId`` (default the first user), ``projectId`` (default
        the first project), ``categoryId`` (default Travel), ``date``, ``total`` (cents; default 1000) or
        ``quantity`` for a unit-priced category, ``billable``, ``notes``, ``locked``, ``fileName``, ``id``."""
        sandbox = self._sandbox
        with sandbox._lock:
            expense_id = fields.pop("id", None) or sandbox._new_id()
            if expense_id in self._expenses:
                raise ValueError(f"expense {expense_id} already exists")
            expense: dict[str, Any] = {
                "id": expense_id, "workspaceId": sandbox.workspace_id, "userId": next(iter(sandbox._users)),
                "date": datetime.fromtimestamp(sandbox.now(), UTC).date().isoformat(),
                "billable": True, "locked": False,
                "notes": "", "quantity": 1, "total": 1000, "fileId": None, "fileName": None,
                "project": None, "task": None, "category": None, "approvalRequestId": None,
            }  # fmt: skip
            fields.setdefault("projectId", next(iter(sandbox._projects)))
            fields.setdefault("categoryId", DEFAULT_CATEGORIES[0][0])
            self._apply(expense, fields)
            self._expenses[expense_id] = expense
            self._changes += 1
            return copy.deepcopy(expense)

    def update_expense(self, expense_id: str, **fields: Any) -> dict[str, Any]:
        with self._sandbox._lock:
            expense = self._expenses[expense_id]
            self._apply(expense, fields)
            self._changes += 1
            return copy.deepcopy(expense)

    def delete_expense(self, expense_id: str) -> None:
        with self._sandbox._lock:
            del self._expenses[expense_id]
            self._changes += 1

    def put_raw_expense(self, raw: Any) -> str:
        """Store any JSON value verbatim (bad records); returns its key for ``delete_expense``."""
        json.dumps(raw)
        with self._sandbox._lock:
            self._raw += 1
            key = f"raw:{self._raw}"
            self._expenses[key] = copy.deepcopy(raw)
            self._changes += 1
            return key

    def _apply(self, expense: dict[str, Any], fields: dict[str, Any]) -> None:
        sandbox = self._sandbox
        fields = {k: v.isoformat() if isinstance(v, (date, datetime)) else v for k, v in fields.items()}
        if "projectId" in fields:
            project = sandbox._projects.get(fields.pop("projectId"))
            if project is None:
                raise ValueError("unknown project")
            client = sandbox._clients.get(project.get("clientId"))
            expense["project"] = {"id": project["id"], "name": project["name"], "clientId": project.get("clientId"),
                                  "clientName": client["name"] if client else None, "color": project.get("color")}
        category_id = fields.pop("categoryId", None)
        if category_id is not None:
            if category_id not in self.categories:
                raise ValueError("unknown category")
            expense["category"] = copy.deepcopy(self.categories[category_id])
        if fields.get("fileName") and not expense.get("fileId") and "fileId" not in fields:
            expense["fileId"] = sandbox._new_id()
        expense.update(fields)
        category = expense.get("category") or {}
        if category.get("hasUnitPrice") and "total" not in fields:
            quantity = Decimal(str(expense.get("quantity") or 0))
            expense["total"] = int((quantity * category["priceInCents"]).quantize(Decimal(1), ROUND_HALF_UP))

    def _order(self) -> list[str]:
        def key(k: str) -> tuple[str, str]:
            obj = self._expenses[k]
            day = obj.get("date") if isinstance(obj, dict) else None
            ident = obj.get("id") if isinstance(obj, dict) else None
            return (day if isinstance(day, str) else "~", ident if isinstance(ident, str) else "")

        version = (len(self._expenses), self._changes)
        if getattr(self, "_order_cache", (None, None))[0] != version:
            self._order_cache = (version, sorted(self._expenses, key=key, reverse=True))
        return self._order_cache[1]

    def listing(self, params: dict[str, str]) -> tuple[int, bytes, list]:
        try:
            page = int(params.get("page", "1"))
            size = int(params.get("page-size", "50"))
        except ValueError:
            return 400, dumps({"message": "page and page-size must be integers", "code": 400}), []
        if page < 1 or size < 1:
            return 400, dumps({"message": "page and page-size must be >= 1", "code": 400}), []
        size = min(size, MAX_PAGE_SIZE)
        user = params.get("user-id")
        with self._sandbox._lock:
            selected = [
                self._expenses[k] for k in self._order()
                if user is None or not isinstance(self._expenses[k], dict) or self._expenses[k].get("userId") == user
            ]  # fmt: skip
            body = {"expenses": {"count": len(selected), "expenses": selected[(page - 1) * size : page * size]},
                    "dailyTotals": [], "weeklyTotals": []}  # fmt: skip
            return 200, dumps(body), []

    def categories_listing(self) -> tuple[int, bytes, list]:
        with self._sandbox._lock:
            cats = list(self.categories.values())
            return 200, dumps({"categories": cats, "count": len(cats)}), []

    def get(self, expense_id: str) -> tuple[int, bytes, list] | None:
        with self._sandbox._lock:
            obj = self._expenses.get(expense_id)
            return None if obj is None or expense_id.startswith("raw:") else (200, dumps(obj), [])
