"""A stateful local HTTP server speaking Harvest API v2, for tests, the demo and benchmarks.

The state lives in :class:`HarvestSandbox`; tests mutate it in-process (or over ``/_sandbox/*`` from another
process) and the pipeline under test reads it over HTTP exactly as it would read api.harvestapp.com.

Performance notes (a benchmark pages a million entries through this):

* every entry's JSON is kept pre-rendered as bytes and re-rendered only when the entry changes;
* the listing order (``spent_date`` descending, then ``id`` descending) is a maintained list of keys;
* the filtered key list is cached per (filter signature, state version), so paging never rescans;
* a page is a ``b",".join`` of cached fragments.
"""

from __future__ import annotations

import bisect
import copy
import json
import math
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from sandbox.harvest.data import (
    LOCKED_APPROVED,
    LOCKED_INVOICED,
    Dataset,
    EntryRow,
    dumps,
    format_timestamp,
    generate_dataset,
    index_entry,
    parse_timestamp,
    round_up_quarter,
)
from sandbox.harvest.expenses import ExpenseBook
from sandbox.harvest.invoices import InvoiceBook
from sandbox.harvest.oauth import TOKEN_PATH, HarvestID
from sandbox.serving import BackgroundServer, Fault, FaultPlan, Response, Traffic

__all__ = ["FAULT_KINDS", "HarvestSandbox"]

FAULT_KINDS = ("5xx", "500", "drop", "slow", "malformed", "429")
MAX_PER_PAGE = 2000
LOG_SIZE = 10_000
_CACHE_SIGNATURES = 16
_RESOURCES = ("clients", "projects", "tasks", "users", "time_entries")
_INVALID_TOKEN = {
    "error": "invalid_token",
    "error_description": "The access token provided is expired, revoked, malformed or invalid for other reasons.",
}
_NOT_FOUND = {"status": 404, "error": "Not Found"}


def _json(status: int, obj: Any, headers: list[tuple[str, str]] | None = None) -> Response:
    return status, dumps(obj), headers or []


class _BadRequest(Exception):
    """A query/body the sandbox refuses; carries the HTTP response to send."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.response = _json(status, {"status": status, "message": message})


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _as_json_value(value: Any) -> Any:
    """Let Python callers pass dates/datetimes for the date and timestamp fields."""
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def _parse_bool(name: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise _BadRequest(422, f"Invalid value for {name}: {value!r} (expected true or false)")


def _parse_int(name: str, value: str, status: int = 422) -> int:
    try:
        return int(value)
    except ValueError:
        raise _BadRequest(status, f"Invalid value for {name}: {value!r} (expected an integer)") from None


def _parse_date(name: str, value: str) -> str:
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise _BadRequest(422, f"Invalid value for {name}: {value!r} (expected YYYY-MM-DD)") from None


def _parse_since(value: str) -> str:
    """``updated_since`` as a canonical ``...Z`` string; fractions round up (stamps are whole seconds)."""
    text = value.strip()
    if len(text) > 6 and text[-6] == " " and text[-3] == ":":  # an unencoded "+" in the offset became a space
        text = text[:-6] + "+" + text[-5:]
    parsed = parse_timestamp(text)
    if parsed is None:
        raise _BadRequest(422, f"Invalid value for updated_since: {value!r} (expected ISO 8601)")
    if parsed.microsecond:
        parsed = parsed.replace(microsecond=0) + timedelta(seconds=1)
    return format_timestamp(parsed)


def _paging(params: dict[str, str]) -> tuple[int, int]:
    per_page = _parse_int("per_page", params["per_page"], 400) if "per_page" in params else MAX_PER_PAGE
    if per_page < 1:
        raise _BadRequest(400, "per_page must be between 1 and 2000")
    page = _parse_int("page", params["page"], 400) if "page" in params else 1
    if page < 1:
        raise _BadRequest(400, "page must be >= 1")
    return page, min(per_page, MAX_PER_PAGE)


def _page_meta(
    resource: str, total: int, page: int, per_page: int, pairs: list[tuple[str, str]], host: str
) -> dict[str, Any]:
    """Harvest's paging envelope; links are absolute and keep every original filter."""
    total_pages = math.ceil(total / per_page)
    filters = [(k, v) for k, v in pairs if k not in ("page", "per_page")]

    def link(number: int) -> str:
        query = urlencode([*filters, ("page", str(number)), ("per_page", str(per_page))])
        return f"http://{host}/v2/{resource}?{query}"

    next_page = page + 1 if page < total_pages else None
    previous_page = page - 1 if page > 1 else None
    return {
        "per_page": per_page,
        "total_pages": total_pages,
        "total_entries": total,
        "next_page": next_page,
        "previous_page": previous_page,
        "page": page,
        "links": {
            "first": link(1),
            "next": link(next_page) if next_page else None,
            "previous": link(previous_page) if previous_page else None,
            "last": link(max(total_pages, 1)),
        },
    }


class HarvestSandbox:
    """In-memory Harvest account plus an HTTP server that serves it under ``/v2``.

    Listings of time entries are sorted by ``spent_date`` descending, then ``id`` descending. Injected raw
    records are filtered only on the fields they carry in a usable form: a missing or unparseable field never
    excludes them, so bad records show up in incremental pulls.
    """

    def __init__(
        self,
        *,
        token: str = "sandbox-token",  # noqa: S107 - a well-known fake credential
        account_id: str = "123456",
        rate_limit: tuple[int, float] | None = (100, 15.0),
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.token = token
        self.account_id = str(account_id)
        self._clock = clock or _utc_now
        self._lock = threading.RLock()
        self._rate: tuple[int, float] | None = None
        self._buckets: dict[str, tuple[float, float]] = {}
        self._traffic = Traffic(LOG_SIZE, counters=("time_entry_pages",))
        self.set_rate_limit(rate_limit)
        self.harvest_id = HarvestID()  # OAuth 2.0 (Harvest ID's token endpoint, served here too)
        self._fault_plan = FaultPlan(FAULT_KINDS)
        self._server = BackgroundServer(
            "HarvestSandbox",
            self._serve,
            lambda exc: _json(500, {"status": 500, "error": "Internal Server Error", "message": repr(exc)}),
        )
        self.reset_stats()
        self.load(generate_dataset(0, seed=0))

    # ------------------------------------------------------------------ lifecycle

    def load(self, dataset: Dataset) -> None:
        """Replace all state with ``dataset`` (entry bytes are shared, never mutated in place)."""
        rows = {row.id: row for row in dataset.entries}
        if len(rows) != len(dataset.entries) or any(k is None or k <= 0 for k in rows):
            raise ValueError("dataset entries need unique positive ids")
        with self._lock:
            self._rows: dict[int, EntryRow] = rows
            self._order: list[int] = [row.id for row in dataset.entries]  # type: ignore[misc]
            self._clients = {c["id"]: copy.deepcopy(c) for c in dataset.clients}
            self._projects = {p["id"]: copy.deepcopy(p) for p in dataset.projects}
            self._tasks = {t["id"]: copy.deepcopy(t) for t in dataset.tasks}
            self._users = {u["id"]: copy.deepcopy(u) for u in dataset.users}
            self._user_assignments = copy.deepcopy(dataset.user_assignments)
            self._task_assignments = copy.deepcopy(dataset.task_assignments)
            self._next_raw_key = -1
            self._max_id = max(rows, default=1_900_000_000)
            self._next_invoice = 40_000_000
            self._next_assignment_id = 900_000_000
            stamps = [r.updated_at for r in dataset.entries if r.updated_at]
            stamps += [obj["updated_at"] for obj in (*dataset.clients, *dataset.projects, *dataset.users)]
            latest = max(stamps, default=None)
            # Mutation stamps start after everything loaded, so an incremental sync can never miss an edit.
            self._last_stamp: datetime | None = parse_timestamp(latest) if latest else None
            self._version = getattr(self, "_version", 0) + 1
            self._cache: OrderedDict[tuple[Any, ...], tuple[int, list[int]]] = OrderedDict()
            self.expenses = ExpenseBook(self)  # /v2/expenses and /v2/expense_categories
            self.invoices = InvoiceBook(self)  # /v2/invoices, their payments and messages

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve in a background thread; returns the base URL (``http://host:port``, API under ``/v2``)."""
        return self._server.start(host, port)

    def stop(self) -> None:
        """Stop serving and close every open keep-alive connection."""
        self._server.stop()

    @property
    def url(self) -> str:
        """Base URL of the running server."""
        if not self._server.running:
            raise RuntimeError("sandbox not started")
        return self._server.base_url

    def auth_headers(self, user_agent: str = "closeout-tests (dev@example.com)") -> dict[str, str]:
        """Headers a well-behaved client sends."""
        return {
            "Authorization": f"Bearer {self.token}",
            "Harvest-Account-Id": self.account_id,
            "User-Agent": user_agent,
        }

    def __enter__(self) -> HarvestSandbox:
        if not self._server.running:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ knobs

    def set_rate_limit(self, rate_limit: tuple[int, float] | None) -> None:
        """``(requests, seconds)`` token bucket per token, or ``None`` to switch limiting off."""
        if rate_limit is not None:
            n, seconds = int(rate_limit[0]), float(rate_limit[1])
            if n < 1 or seconds <= 0:
                raise ValueError("rate_limit needs requests >= 1 and seconds > 0")
            rate_limit = (n, seconds)
        with self._lock:
            self._rate = rate_limit
            self._buckets = {}

    def inject_fault(
        self,
        kind: str,
        *,
        times: int = 1,
        path_prefix: str = "/v2/time_entries",
        after: int = 0,
        delay: float = 0.0,
    ) -> None:
        """Make the next matching requests misbehave; ``after`` skips that many matches first."""
        self._fault_plan.add(kind, times=times, path_prefix=path_prefix, after=after, delay=delay)

    def clear_faults(self) -> None:
        """Remove every pending fault."""
        self._fault_plan.clear()

    def stats(self) -> dict[str, Any]:
        """Counters of API traffic (``/_sandbox/*`` control calls are not counted; status 0 = dropped)."""
        return self._traffic.snapshot()

    def reset_stats(self) -> None:
        """Zero all counters and the request log."""
        self._traffic.reset()

    # ------------------------------------------------------------------ entries

    def entries_snapshot(self) -> list[dict[str, Any]]:
        """Every stored entry (raw ones included) as parsed JSON, in listing order."""
        with self._lock:
            bodies = [self._rows[k].body for k in reversed(self._order)]
        return [json.loads(body) for body in bodies]

    def get_entry(self, entry_id: int) -> dict[str, Any]:
        """The current object of one entry; ``KeyError`` if absent."""
        with self._lock:
            return json.loads(self._rows[entry_id].body)

    def create_entry(self, **fields: Any) -> dict[str, Any]:
        """Add an entry. ``project_id``/``user_id``/``task_id`` pick the references (defaults: the first
        project and its first member and task); any other Harvest field may be given and wins."""
        with self._lock:
            entry_id = fields.pop("id", None)
            if entry_id is None:
                entry_id = self._max_id + 7
            if not isinstance(entry_id, int) or isinstance(entry_id, bool) or entry_id <= 0:
                raise ValueError("id must be a positive integer")
            if entry_id in self._rows:
                raise ValueError(f"entry {entry_id} already exists")
            stamp = self._stamp()
            entry: dict[str, Any] = {
                "id": entry_id,
                "spent_date": self._clock().astimezone(UTC).date().isoformat(),
                "hours": 1.0,
                "hours_without_timer": 1.0,
                "rounded_hours": 1.0,
                "notes": None,
                "is_locked": False,
                "locked_reason": None,
                "is_closed": False,
                "is_billed": False,
                "timer_started_at": None,
                "started_time": None,
                "ended_time": None,
                "is_running": False,
                "billable": False,
                "budgeted": False,
                "billable_rate": None,
                "cost_rate": None,
                "created_at": stamp,
                "updated_at": stamp,
                "user": None,
                "client": None,
                "project": None,
                "task": None,
                "user_assignment": None,
                "task_assignment": None,
                "invoice": None,
                "external_reference": None,
            }
            self._apply(entry, fields, stamp, creating=True)
            self._store(entry_id, index_entry(entry))
            self._max_id = max(self._max_id, entry_id)
            return entry

    def update_entry(self, entry_id: int, **fields: Any) -> dict[str, Any]:
        """Change fields of an entry and bump ``updated_at`` (unless given); a new ``spent_date`` re-sorts."""
        with self._lock:
            if entry_id not in self._rows or entry_id <= 0:
                raise KeyError(entry_id)
            if "id" in fields and fields["id"] != entry_id:
                raise ValueError("the id of an entry cannot change")
            entry = json.loads(self._rows[entry_id].body)
            stamp = self._stamp()
            self._apply(entry, fields, stamp, creating=False)
            self._store(entry_id, index_entry(entry))
            return entry

    def delete_entry(self, entry_id: int) -> None:
        """Remove an entry without a trace (Harvest has no tombstones); raw keys (negative) work too."""
        with self._lock:
            if entry_id not in self._rows:
                raise KeyError(entry_id)
            self._unlink(entry_id)
            del self._rows[entry_id]
            self._version += 1

    def delete_project(self, project_id: int) -> int:
        """Delete a project, its assignments and all its entries; returns how many entries went."""
        with self._lock:
            if project_id not in self._projects:
                raise KeyError(project_id)
            del self._projects[project_id]
            self._user_assignments = {k: v for k, v in self._user_assignments.items() if k[1] != project_id}
            self._task_assignments = {k: v for k, v in self._task_assignments.items() if k[0] != project_id}
            doomed = {k for k, row in self._rows.items() if row.project_id == project_id}
            if doomed:
                self._order = [k for k in self._order if k not in doomed]
                for k in doomed:
                    del self._rows[k]
            self._version += 1
            return len(doomed)

    def put_raw_entry(self, raw: Any) -> int:
        """Store any JSON value verbatim (to inject bad records); returns its key, usable with delete_entry.

        It is listed where its ``spent_date`` sorts, or first when that is missing/unparseable.
        """
        body = dumps(raw)
        with self._lock:
            key = self._next_raw_key
            self._next_raw_key -= 1
            self._store(key, index_entry(raw, body))
            return key

    def edit_random(self, count: int, *, seed: int = 0) -> list[int]:
        """Edit ``count`` random existing entries (hours and notes), bumping updated_at; returns their ids."""
        rng = random.Random(seed)
        with self._lock:
            ids = sorted(k for k in self._rows if k > 0)
            chosen = rng.sample(ids, min(max(0, int(count)), len(ids)))
            for n, entry_id in enumerate(chosen):
                old = json.loads(self._rows[entry_id].body).get("hours")
                cents = rng.randrange(10, 801)
                if isinstance(old, (int, float)) and round(old * 100) == cents:
                    cents = cents % 800 + 10
                self.update_entry(entry_id, hours=cents / 100, notes=f"Edited in sandbox (seed {seed}, #{n})")
        return chosen

    # ------------------------------------------------------------------ internals: state

    def _stamp(self) -> str:
        """Next mutation timestamp: the clock, but strictly after the previous stamp."""
        now = self._clock().astimezone(UTC).replace(microsecond=0)
        if self._last_stamp is not None and now <= self._last_stamp:
            now = self._last_stamp + timedelta(seconds=1)
        self._last_stamp = now
        return format_timestamp(now)

    def _sort_key(self, key: int) -> tuple[str, int, int]:
        row = self._rows[key]
        return (row.spent_date or "~", row.id if row.id is not None else 0, key)

    def _unlink(self, key: int) -> None:
        order = self._order
        i = bisect.bisect_left(order, self._sort_key(key), key=self._sort_key)
        if i >= len(order) or order[i] != key:  # pragma: no cover - would be a bug
            raise RuntimeError(f"sort order lost track of {key}")
        del order[i]

    def _store(self, key: int, row: EntryRow) -> None:
        old = self._rows.get(key)
        if old is not None and (old.spent_date, old.id) == (row.spent_date, row.id):
            self._rows[key] = row  # same position: no need to touch the order
        else:
            if old is not None:
                self._unlink(key)
            self._rows[key] = row
            bisect.insort(self._order, key, key=self._sort_key)
        self._version += 1

    def _resolve(self, entry: dict[str, Any], fields: dict[str, Any], creating: bool) -> bool:
        """Point the entry at project/user/task (creating assignments as needed); True if anything moved."""
        wanted = {k: fields.pop(k) for k in ("project_id", "user_id", "task_id") if k in fields}
        fields.pop("client_id", None)  # follows from the project
        if not creating and not wanted:
            return False

        def current(name: str) -> int | None:
            ref = entry.get(name)
            return ref.get("id") if isinstance(ref, dict) else None

        project_id = wanted.get("project_id", current("project"))
        if project_id is None:
            if not self._projects:
                raise ValueError("no projects loaded")
            project_id = next(iter(self._projects))
        if project_id not in self._projects:
            raise ValueError(f"unknown project {project_id}")
        project = self._projects[project_id]
        user_id = wanted.get("user_id", current("user"))
        if user_id is None:
            members = [u for (u, p) in self._user_assignments if p == project_id]
            user_id = members[0] if members else next(iter(self._users))
        task_id = wanted.get("task_id", current("task"))
        if task_id is None:
            assigned = [t for (p, t) in self._task_assignments if p == project_id]
            task_id = assigned[0] if assigned else next(iter(self._tasks))
        if user_id not in self._users or task_id not in self._tasks:
            raise ValueError(f"unknown user {user_id} or task {task_id}")
        user, task = self._users[user_id], self._tasks[task_id]
        stamp = entry["updated_at"]
        ua = self._user_assignments.get((user_id, project_id))
        if ua is None:  # lenient: Harvest would refuse, a sandbox just assigns the user
            ua = self._user_assignments[(user_id, project_id)] = {
                "id": self._assignment_id(),
                "is_project_manager": False,
                "is_active": True,
                "budget": None,
                "created_at": stamp,
                "updated_at": stamp,
                "hourly_rate": user["default_hourly_rate"],
            }
        ta = self._task_assignments.get((project_id, task_id))
        if ta is None:
            ta = self._task_assignments[(project_id, task_id)] = {
                "id": self._assignment_id(),
                "billable": task["billable_by_default"],
                "is_active": True,
                "created_at": stamp,
                "updated_at": stamp,
                "hourly_rate": task["default_hourly_rate"],
                "budget": None,
            }
        client = project["client"]
        entry["user"] = {"id": user_id, "name": f"{user['first_name']} {user['last_name']}"}
        entry["client"] = {"id": client["id"], "name": client["name"], "currency": client["currency"]}
        entry["project"] = {"id": project_id, "name": project["name"], "code": project["code"]}
        entry["task"] = {"id": task_id, "name": task["name"]}
        entry["user_assignment"] = copy.deepcopy(ua)
        entry["task_assignment"] = copy.deepcopy(ta)
        entry["billable"] = bool(project["is_billable"] and ta["billable"])
        entry["budgeted"] = project["budget"] is not None
        entry["cost_rate"] = user["cost_rate"]
        entry["billable_rate"] = self._rate_for(entry) if entry["billable"] else None
        return True

    def _assignment_id(self) -> int:
        self._next_assignment_id += 5
        return self._next_assignment_id

    def _rate_for(self, entry: dict[str, Any]) -> float | None:
        project = self._projects.get((entry.get("project") or {}).get("id"))
        bill_by = project["bill_by"] if project else "People"
        if bill_by == "Project" and project:
            return project["hourly_rate"]
        source = entry.get("task_assignment") if bill_by == "Tasks" else entry.get("user_assignment")
        return source.get("hourly_rate") if isinstance(source, dict) else None

    def _apply(self, entry: dict[str, Any], fields: dict[str, Any], stamp: str, *, creating: bool) -> None:
        """Apply caller fields, keeping the derived fields consistent unless the caller set them too."""
        fields = {k: _as_json_value(v) for k, v in fields.items()}
        if not creating:
            entry["updated_at"] = stamp
        self._resolve(entry, fields, creating)
        entry.update(fields)
        if "hours" in fields:
            hours = round(float(fields["hours"]), 2)
            entry["hours"] = hours
            if "hours_without_timer" not in fields:
                entry["hours_without_timer"] = hours
            if "rounded_hours" not in fields:
                entry["rounded_hours"] = round_up_quarter(hours)
        if "billable" in fields and "billable_rate" not in fields:
            entry["billable_rate"] = self._rate_for(entry) if fields["billable"] else None
        if "is_billed" in fields and "invoice" not in fields:
            if not fields["is_billed"]:
                entry["invoice"] = None
            elif not entry.get("invoice"):
                self._next_invoice += 3
                entry["invoice"] = {"id": self._next_invoice, "number": str(self._next_invoice % 100_000)}
        if ("is_closed" in fields or "is_billed" in fields) and "is_locked" not in fields:
            billed, closed = bool(entry.get("is_billed")), bool(entry.get("is_closed"))
            entry["is_locked"] = billed or closed
            if "locked_reason" not in fields:
                entry["locked_reason"] = LOCKED_INVOICED if billed else LOCKED_APPROVED if closed else None
        if "is_running" in fields and "timer_started_at" not in fields:
            entry["timer_started_at"] = stamp if fields["is_running"] else None

    def _filtered_keys(self, filters: dict[str, Any]) -> list[int]:
        """Matching keys in listing order, cached per (filter signature, state version)."""
        signature = tuple(sorted(filters.items()))
        cached = self._cache.get(signature)
        if cached is not None and cached[0] == self._version:
            self._cache.move_to_end(signature)
            return cached[1]
        rows = self._rows
        keys = self._order[::-1]
        since = filters.get("updated_since")
        if since is not None:
            keys = [k for k in keys if (u := rows[k].updated_at) is None or u >= since]
        start, end = filters.get("from"), filters.get("to")
        if start is not None:
            keys = [k for k in keys if (d := rows[k].spent_date) is None or d >= start]
        if end is not None:
            keys = [k for k in keys if (d := rows[k].spent_date) is None or d <= end]
        for name in ("is_billed", "is_running", "client_id", "project_id", "user_id"):
            if name in filters:
                wanted = filters[name]
                index = EntryRow._fields.index(name)
                keys = [k for k in keys if (v := rows[k][index]) is None or v == wanted]
        self._cache[signature] = (self._version, keys)
        while len(self._cache) > _CACHE_SIGNATURES:
            self._cache.popitem(last=False)
        return keys

    # ------------------------------------------------------------------ internals: HTTP

    def _record(self, method: str, target: str, status: int, *, listing: bool = False) -> None:
        self._traffic.record(method, target, status, counter="time_entry_pages" if listing and status == 200 else None)

    def _take_fault(self, path: str) -> Fault | None:
        return self._fault_plan.take(path)

    def _take_token(self, token: str) -> int | None:
        """Token bucket; returns Retry-After seconds when empty (a refused request costs nothing)."""
        with self._lock:
            if self._rate is None:
                return None
            capacity, seconds = self._rate
            refill = capacity / seconds
            now = time.monotonic()
            tokens, last = self._buckets.get(token, (float(capacity), now))
            tokens = min(float(capacity), tokens + (now - last) * refill)
            if tokens >= 1.0:
                self._buckets[token] = (tokens - 1.0, now)
                return None
            self._buckets[token] = (tokens, now)
            return max(1, math.ceil((1.0 - tokens) / refill))

    def _serve(self, method: str, target: str, headers: Any, body: bytes, host: str) -> Response | None:
        """Entry point of the HTTP handler; ``None`` means drop the connection without answering."""
        split = urlsplit(target)
        path = split.path
        if path.startswith("/_sandbox/"):
            return self._control(method, path, body)
        if path == TOKEN_PATH and method == "POST":  # Harvest ID (id.getharvest.com) lives on this server too
            response = self.harvest_id.token(headers, body)
            self._record(method, target, response[0])
            return response
        fault = self._take_fault(path)
        kind = fault.kind if fault else None
        if kind == "drop":
            self._record(method, target, 0)
            return None
        if fault is not None and kind == "slow":
            time.sleep(fault.delay)
        if kind == "5xx":
            response = _json(503, {"status": 503, "error": "Service Unavailable"})
        elif kind == "500":
            response = _json(500, {"status": 500, "error": "Internal Server Error"})
        elif kind == "429":
            response = _json(429, {"status": 429, "error": "Too Many Requests"}, [("Retry-After", "1")])
        else:
            try:
                response = self._api(method, path, split.query, headers, host, body)
            except _BadRequest as exc:
                response = exc.response
        if kind == "malformed":
            response = (200, response[1][: max(1, len(response[1]) // 2)], [])
        listing = method == "GET" and path.rstrip("/") == "/v2/time_entries"
        self._record(method, target, response[0], listing=listing)
        return response

    def _api(self, method: str, path: str, query: str, headers: Any, host: str, body: bytes = b"") -> Response:
        if path != "/v2" and not path.startswith("/v2/"):
            return _json(404, _NOT_FOUND)
        authorization = headers.get("Authorization") or ""
        if authorization != f"Bearer {self.token}" and self.harvest_id.accepts(authorization) != self.account_id:
            return _json(401, _INVALID_TOKEN)
        if (headers.get("Harvest-Account-Id") or "").strip() != self.account_id:
            return _json(
                401,
                {
                    "error": "invalid_account",
                    "error_description": (
                        "The Harvest-Account-Id header is missing or does not match an account this token can access."
                    ),
                },
            )
        if not (headers.get("User-Agent") or "").strip():
            return _json(
                400,
                {
                    "error": "invalid_request",
                    "error_description": "A User-Agent header naming your application and a contact is required.",
                },
            )
        retry_after = self._take_token(authorization)
        if retry_after is not None:
            return _json(
                429,
                {"status": 429, "error": "Too Many Requests", "message": f"Retry in {retry_after} s."},
                [("Retry-After", str(retry_after))],
            )
        pairs = parse_qsl(query, keep_blank_values=True)
        params = dict(pairs)
        parts = [p for p in path.split("/")[2:] if p]
        if parts[:1] == ["invoices"]:
            return self.invoices.handle(method, parts, params, pairs, body, host)
        if method != "GET":
            return _json(405, {"status": 405, "error": "Method Not Allowed"})
        match parts:
            case ["users", "me"]:
                return 200, dumps(self._me()), []
            case ["company"]:
                return 200, dumps(self._company(host)), []
            case ["time_entries"]:
                return self._list_entries(params, pairs, host)
            case ["expenses" | "expense_categories" as resource]:
                return self.expenses.listing(resource, params, pairs, host)
            case ["expenses" | "expense_categories" as resource, ident]:
                found = self.expenses.get(resource, ident)
                return (200, found, []) if found is not None else _json(404, _NOT_FOUND)
            case [resource] if resource in _RESOURCES:
                return self._list_catalog(resource, params, pairs, host)
            case ["time_entries", ident]:
                with self._lock:
                    row = self._rows.get(int(ident)) if ident.isdigit() else None
                return (200, row.body, []) if row is not None else _json(404, _NOT_FOUND)
            case [resource, ident] if resource in _RESOURCES:
                with self._lock:
                    obj = self._catalog(resource).get(int(ident)) if ident.isdigit() else None
                    payload = dumps(obj) if obj is not None else None
                return (200, payload, []) if payload is not None else _json(404, _NOT_FOUND)
        return _json(404, _NOT_FOUND)

    def _catalog(self, resource: str) -> dict[int, dict[str, Any]]:
        return {
            "clients": self._clients,
            "projects": self._projects,
            "tasks": self._tasks,
            "users": self._users,
        }[resource]

    def _me(self) -> dict[str, Any]:
        with self._lock:
            me = copy.deepcopy(next(iter(self._users.values())))
        me.update(
            {
                "timezone": "Etc/UTC",
                "is_contractor": False,
                "weekly_capacity": 126000,
                "access_roles": ["administrator"],
                "roles": [],
            }
        )
        return me

    def _company(self, host: str) -> dict[str, Any]:
        return {
            "base_uri": "https://sandbox.harvestapp.com",
            "full_domain": "sandbox.harvestapp.com",
            "name": "Closeout Sandbox Co.",
            "is_active": True,
            "week_start_day": "Monday",
            "wants_timestamp_timers": False,
            "time_format": "hours_minutes",
            "date_format": "%Y-%m-%d",
            "plan_type": "sponsored",
            "clock": "24h",
            "decimal_symbol": ".",
            "thousands_separator": ",",
            "color_scheme": "orange",
            "weekly_capacity": 126000,
            "expense_feature": True,
            "invoice_feature": True,
            "estimate_feature": True,
            "approval_feature": True,
            "team_feature": True,
        }

    def _list_entries(self, params: dict[str, str], pairs: list[tuple[str, str]], host: str) -> Response:
        """One page of time entries, sorted by ``spent_date`` descending, then ``id`` descending."""
        page, per_page = _paging(params)
        filters: dict[str, Any] = {}
        if "updated_since" in params:
            filters["updated_since"] = _parse_since(params["updated_since"])
        for name in ("from", "to"):
            if name in params:
                filters[name] = _parse_date(name, params[name])
        for name in ("is_billed", "is_running"):
            if name in params:
                filters[name] = _parse_bool(name, params[name])
        for name in ("client_id", "project_id", "user_id"):
            if name in params:
                filters[name] = _parse_int(name, params[name])
        with self._lock:
            keys = self._filtered_keys(filters)
            total = len(keys)
            rows = self._rows
            bodies = [rows[k].body for k in keys[(page - 1) * per_page : page * per_page]]
        meta = dumps(_page_meta("time_entries", total, page, per_page, pairs, host))
        return 200, b'{"time_entries":[' + b",".join(bodies) + b"]," + meta[1:], []

    def _list_catalog(self, resource: str, params: dict[str, str], pairs: list[tuple[str, str]], host: str) -> Response:
        """Clients/projects/tasks/users, newest first (Harvest sorts these by creation, i.e. id)."""
        page, per_page = _paging(params)
        since = _parse_since(params["updated_since"]) if "updated_since" in params else None
        active = _parse_bool("is_active", params["is_active"]) if "is_active" in params else None
        client_id = _parse_int("client_id", params["client_id"]) if "client_id" in params else None
        with self._lock:
            newest_first = sorted(self._catalog(resource).values(), key=lambda obj: obj["id"], reverse=True)
            selected = [
                obj
                for obj in newest_first
                if (since is None or obj["updated_at"] >= since)
                and (active is None or obj["is_active"] == active)
                and (client_id is None or resource != "projects" or obj["client"]["id"] == client_id)
            ]
            payload = dumps(
                {
                    resource: selected[(page - 1) * per_page : page * per_page],
                    **_page_meta(resource, len(selected), page, per_page, pairs, host),
                }
            )
        return 200, payload, []

    def _control(self, method: str, path: str, body: bytes) -> Response:
        """``/_sandbox/*``: the Python API over HTTP, for harnesses in another process (no auth)."""
        try:
            args: Any = json.loads(body) if body.strip() else {}
        except ValueError:
            return _json(400, {"status": 400, "message": "body is not JSON"})
        parts = [p for p in path.split("/")[2:] if p]
        try:
            match method, parts:
                case "GET", ["stats"]:
                    stats = self.stats()
                    stats["status_counts"] = {str(k): v for k, v in stats["status_counts"].items()}
                    return _json(200, stats)
                case "GET", ["health"]:
                    with self._lock:
                        return _json(200, {"ok": True, "entries": len(self._rows)})
                case "POST", ["reset_stats"]:
                    self.reset_stats()
                    return _json(200, {"ok": True})
                case "POST", ["faults"]:
                    self.inject_fault(**args)
                    return _json(201, {"ok": True})
                case "DELETE", ["faults"]:
                    self.clear_faults()
                    return _json(200, {"ok": True})
                case "POST", ["time_entries"]:
                    return _json(201, self.create_entry(**args))
                case "PATCH", ["time_entries", ident]:
                    return _json(200, self.update_entry(int(ident), **args))
                case "DELETE", ["time_entries", ident]:
                    self.delete_entry(int(ident))
                    return _json(200, {"deleted": int(ident)})
                case "POST", ["raw_entries"]:
                    return _json(201, {"key": self.put_raw_entry(args)})
                case "DELETE", ["projects", ident]:
                    return _json(200, {"deleted_entries": self.delete_project(int(ident))})
                case "POST", ["edit_random"]:
                    ids = self.edit_random(int(args["count"]), seed=int(args.get("seed", 0)))
                    return _json(200, {"ids": ids})
                case _, ["expenses", *_] | ["raw_expenses"] if (found := self.expenses.control(method, parts, args)):
                    return found
                case "GET", ["invoices"]:
                    return _json(200, self.invoices.snapshot())
                case "GET", ["invoices", ident, "payments"]:
                    return _json(200, self.invoices.payments(int(ident)))
                case "DELETE", ["invoices", ident]:  # someone deletes an invoice in the Harvest web app
                    self.invoices.delete(int(ident))
                    return _json(200, {"deleted": int(ident)})
                case "POST", ["rate_limit"]:
                    if args.get("off"):
                        self.set_rate_limit(None)
                    else:
                        self.set_rate_limit((int(args["requests"]), float(args["seconds"])))
                    return _json(200, {"ok": True})
        except KeyError as exc:
            return _json(404, {"status": 404, "error": "Not Found", "message": f"no such item {exc}"})
        except (TypeError, ValueError) as exc:
            return _json(400, {"status": 400, "message": str(exc)})
        return _json(404, _NOT_FOUND)
