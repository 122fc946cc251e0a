"""A stateful local HTTP server speaking the Clockify REST API v1 and its Reports API, for tests, demo, benchmarks.

One server, two prefixes: REST under ``/api/v1`` (like api.clockify.me/api/v1) and reports under ``/reports/v1``
(like reports.api.clockify.me/v1). Tests mutate the state in-process; other processes use ``/_sandbox/*``.

Performance notes (benchmarks page a million entries through this):

* every entry's REST JSON is pre-rendered bytes, re-rendered only when the entry changes;
* report items are rendered per page from cached per-(user, project, task) fragments (they vary with ``rounding``
  and ``amountShown``, so pre-rendering every variant would double the memory for little gain);
* ordering is kept in maintained key lists (all entries, and per user), so a date range is two bisections;
* filtered key lists and report totals are cached per (filter signature, state version).

Behaviour worth knowing (where Clockify's docs are silent, the sandbox picks the stricter reading):

* ``page-size`` above 5000 (``pageSize`` above 1000 in reports) is capped, not refused: a client that asks for
  more and stops at the first "short" page loses data, as it would against Clockify;
* the detailed report leaves out running timers and answers ``{"totals": [], "timeentries": []}`` when empty;
  ``totalAmount`` adds up all currencies, ``totals[0].amounts[0].amountByCurrencies`` splits them;
* approval and invoicing fire no time-entry webhook and are visible only in the detailed report;
* webhooks carry ``Clockify-Signature`` (the webhook's token as issued), ``Clockify-Webhook-Event-Type`` and
  ``Clockify-Webhook-Id``, plus ``Clockify-Webhook-Delivery-Id``, which is sandbox-added (not a Clockify header):
  one uuid per event and webhook, kept when the same event is redelivered, so receivers can deduplicate.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import random
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from sandbox.clockify.data import (
    APPROVAL_STATES,
    ROUND_MINUTES,
    WORKSPACE_CURRENCY,
    Dataset,
    EntryRow,
    cost_rate,
    dumps,
    generate_dataset,
    make_row,
    object_id,
    parse_timestamp,
    resolve_rate,
    stamp,
)
from sandbox.clockify.expenses import ClockifyExpenseBook
from sandbox.serving import BackgroundServer, Fault, FaultPlan, Response, Traffic

__all__ = ["FAULT_KINDS", "LIMITS", "WEBHOOK_EVENTS", "ClockifySandbox"]

FAULT_KINDS = ("5xx", "500", "drop", "slow", "malformed", "429")
WEBHOOK_EVENTS = ("NEW_TIME_ENTRY", "TIME_ENTRY_UPDATED", "TIME_ENTRY_DELETED")
LIMITS = ("paid", "free")
PAID_PER_SECOND = 50  # documented: 50 requests per second per workspace
FREE_PER_HOUR = 30  # new free workspaces: 30 requests per hour
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 5000
MAX_REPORT_PAGE_SIZE = 1000
MAX_DELIVERY_RETRIES = 3
LOG_SIZE = 10_000
_CACHE_SIGNATURES = 16
_LAST = 1 << 62  # sort position of rows without a usable start: newest of all
_JB = ("false", "true")
_INVOICING = ("UNINVOICED", "INVOICED")
_ROUND_STEP = ROUND_MINUTES * 60  # the workspace rounds report durations up to this
_FIELDS = frozenset(
    {"userId", "projectId", "taskId", "billable", "description", "start", "end", "hourlyRate", "costRate",
     "approvalState", "invoicingState"}
)  # fmt: skip


def _error(status: int, message: str, headers: list[tuple[str, str]] | None = None) -> Response:
    return status, dumps({"message": message, "code": status}), headers or []


class _BadRequest(Exception):
    """A query/body the sandbox refuses; carries the response to send."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.response = _error(status, message)


@dataclass
class _Webhook:
    id: str
    url: str
    token: str
    events: tuple[str, ...]


@dataclass
class _Delivery:
    delivery_id: str
    webhook: _Webhook
    event: str
    body: bytes
    attempts: int = 0


def _epoch(value: Any, name: str) -> int:
    """Seconds since the epoch from a datetime, a number or an ISO 8601 string (naive means UTC)."""
    if isinstance(value, datetime):
        return int((value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    parsed = parse_timestamp(value)
    if parsed is None:
        raise ValueError(f"{name} must be a datetime, epoch seconds or ISO 8601, got {value!r}")
    return int(parsed.timestamp())


def _bound(name: str, value: Any, *, upper: bool) -> int:
    """A query/body time bound in epoch seconds; fractions round inward (entries start on whole seconds)."""
    text = value.strip() if isinstance(value, str) else value
    if isinstance(text, str) and len(text) > 6 and text[-6] == " " and text[-3] == ":":
        text = text[:-6] + "+" + text[-5:]  # an unencoded "+" in the offset arrived as a space
    parsed = parse_timestamp(text)
    if parsed is None:
        raise _BadRequest(400, f"{name} must be an ISO 8601 date-time like 2024-01-31T00:00:00Z, got {value!r}")
    if parsed.microsecond and not upper:
        parsed = parsed.replace(microsecond=0) + timedelta(seconds=1)
    return int(parsed.replace(microsecond=0).timestamp())


def _paging(params: dict[str, str]) -> tuple[int, int]:
    try:
        page = int(params.get("page", "1"))
        size = int(params.get("page-size", str(DEFAULT_PAGE_SIZE)))
    except ValueError:
        raise _BadRequest(400, "page and page-size must be integers") from None
    if page < 1 or size < 1:
        raise _BadRequest(400, "page and page-size must be >= 1")
    return page, min(size, MAX_PAGE_SIZE)


def _desc(order: list[int], segments: list[tuple[int, int]]) -> list[int]:
    """Keys of the ascending ``order`` within ``segments``, newest first."""
    out: list[int] = []
    for a, b in segments:
        if b > a:
            out.extend(order[b - 1 : a - 1 if a else None : -1])
    return out


class ClockifySandbox:
    """In-memory Clockify workspace plus an HTTP server for it.

    Time-entry listings are newest first: ``timeInterval.start`` descending, then ``id`` descending. Raw rows
    (:meth:`put_raw_entry`) are served verbatim; rows without a usable start are listed first and never excluded.
    """

    def __init__(
        self,
        dataset: Dataset | None = None,
        *,
        api_key: str = "sandbox-api-key",
        limit: str | None = "paid",
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.api_key = api_key
        self._clock = clock or time.time
        self._offset = 0.0
        self._lock = threading.RLock()
        self._traffic = Traffic(LOG_SIZE)
        self._fault_plan = FaultPlan(FAULT_KINDS)
        self._limit: str | None = None
        self._buckets: dict[str, Any] = {}
        self.set_limit(limit)
        self._webhooks: dict[str, _Webhook] = {}
        self._outbox: list[_Delivery] = []
        self._sent: list[dict[str, Any]] = []
        self._dropped: list[dict[str, Any]] = []
        self._deliver_lock = threading.Lock()
        self.webhook_faults()
        self._server = BackgroundServer(
            "ClockifySandbox",
            self._serve,
            lambda exc: _error(500, f"Internal Server Error: {exc!r}"),
        )
        self._version = 0
        self.reset_stats()
        self.load(dataset if dataset is not None else generate_dataset(0, seed=0))

    # ------------------------------------------------------------------ lifecycle

    def load(self, dataset: Dataset) -> None:
        """Replace all state with ``dataset`` (rows are immutable tuples, shared, never changed in place)."""
        rows: list[EntryRow | None] = list(dataset.entries)
        by_id = {row.id: k for k, row in enumerate(dataset.entries)}
        if len(by_id) != len(rows) or any(not isinstance(i, str) for i in by_id):
            raise ValueError("dataset entries need unique string ids")
        with self._lock:
            self._rows = rows
            self._by_id: dict[str, int] = by_id
            self._workspace = json.loads(dumps(dataset.workspace))
            self.workspace_id: str = self._workspace["id"]
            self._users = {u["id"]: u for u in json.loads(dumps(dataset.users))}
            self._clients = {c["id"]: c for c in json.loads(dumps(dataset.clients))}
            self._projects = {p["id"]: p for p in json.loads(dumps(dataset.projects))}
            self._tasks = {t["id"]: t for t in json.loads(dumps(dataset.tasks))}
            order = list(range(len(rows)))
            pairs = [(r.start, r.id) for r in dataset.entries]
            if any(r.start is None for r in dataset.entries) or any(a > b for a, b in itertools.pairwise(pairs)):
                order.sort(key=self._sort_key)
            del pairs
            self._order = order
            self._user_order: dict[str, list[int]] = {uid: [] for uid in self._users}
            for k in order:
                self._user_order.setdefault(rows[k].user_id, []).append(k)
            self._machine = f"{random.Random(dataset.seed ^ 0x5EED).getrandbits(40):010x}"
            self._counter = 0
            self._version += 1
            self._cache: OrderedDict[tuple[Any, ...], tuple[int, Any]] = OrderedDict()
            self._ctx: dict[tuple[Any, ...], str] = {}
            self._hydrate: dict[str | None, bytes] = {}
            self.expenses = ClockifyExpenseBook(self)  # /workspaces/{ws}/expenses

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve in a background thread; returns the base URL (REST under ``/api/v1``, reports ``/reports/v1``)."""
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

    @property
    def api_url(self) -> str:
        """What a client uses instead of ``https://api.clockify.me/api/v1``."""
        return self.url + "/api/v1"

    @property
    def reports_url(self) -> str:
        """What a client uses instead of ``https://reports.api.clockify.me/v1``."""
        return self.url + "/reports/v1"

    def auth_headers(self) -> dict[str, str]:
        """Headers a well-behaved client sends."""
        return {"X-Api-Key": self.api_key, "Content-Type": "application/json"}

    def __enter__(self) -> ClockifySandbox:
        if not self._server.running:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ knobs

    def now(self) -> float:
        """The sandbox's clock (epoch seconds): the injected clock plus everything :meth:`advance` added."""
        return self._clock() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the sandbox clock forward (rate-limit windows, default timestamps of new entries)."""
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        with self._lock:
            self._offset += float(seconds)

    def set_limit(self, limit: str | None) -> None:
        """``"paid"`` (50 req/s per workspace, token bucket), ``"free"`` (30 req/hour), or ``None`` (off)."""
        if limit not in (*LIMITS, None):
            raise ValueError(f"limit must be one of {LIMITS} or None, got {limit!r}")
        with self._lock:
            self._limit = limit
            self._buckets = {}

    def inject_fault(
        self, kind: str, *, times: int = 1, path_prefix: str = "/", after: int = 0, delay: float = 0.0
    ) -> None:
        """Make the next matching requests misbehave; ``after`` lets that many matches through first."""
        self._fault_plan.add(kind, times=times, path_prefix=path_prefix, after=after, delay=delay)

    def clear_faults(self) -> None:
        """Remove every pending fault."""
        self._fault_plan.clear()

    def stats(self) -> dict[str, Any]:
        """API traffic counters (``/_sandbox/*`` calls are not counted; status 0 = dropped connection)."""
        return self._traffic.snapshot()

    def reset_stats(self) -> None:
        """Zero all counters and the request log."""
        self._traffic.reset()

    # ------------------------------------------------------------------ webhooks

    def add_webhook(self, url: str, events: Iterable[str] = WEBHOOK_EVENTS) -> tuple[str, str]:
        """Subscribe ``url`` to time-entry events; returns ``(webhook_id, auth_token)``.

        The token is sent verbatim as ``Clockify-Signature`` (Clockify's scheme: a shared token, not an HMAC).
        """
        events = tuple(events)
        if not events or any(e not in WEBHOOK_EVENTS for e in events):
            raise ValueError(f"events must be a non-empty subset of {WEBHOOK_EVENTS}")
        with self._lock:
            webhook = _Webhook(self._new_id(), str(url), uuid.uuid4().hex + uuid.uuid4().hex, events)
            self._webhooks[webhook.id] = webhook
        return webhook.id, webhook.token

    def remove_webhook(self, webhook_id: str) -> None:
        """Unsubscribe; pending deliveries of that webhook are discarded."""
        with self._lock:
            del self._webhooks[webhook_id]
            self._outbox = [d for d in self._outbox if d.webhook.id != webhook_id]

    def webhook_faults(self, duplicate: float = 0.0, shuffle: bool = False, drop: float = 0.0, seed: int = 0) -> None:
        """Emulate at-least-once, unordered delivery: duplicate/drop probabilities, shuffled batches."""
        if not (0.0 <= duplicate <= 1.0 and 0.0 <= drop <= 1.0):
            raise ValueError("duplicate and drop are probabilities in [0, 1]")
        with self._lock:
            self._wh_duplicate, self._wh_shuffle, self._wh_drop = float(duplicate), bool(shuffle), float(drop)
            self._wh_rng = random.Random(seed)

    def pending_deliveries(self) -> int:
        """How many deliveries wait in the outbox."""
        with self._lock:
            return len(self._outbox)

    def deliver(self, timeout: float = 5.0) -> list[tuple[str, int]]:
        """POST everything in the outbox now; returns ``[(delivery_id, status)]`` in send order (0 = no answer).

        Non-2xx deliveries stay in the outbox for the next call, up to 3 retries; duplicates keep their id.
        """
        with self._deliver_lock:
            with self._lock:
                pending, self._outbox = self._outbox, []
                rng = self._wh_rng
                batch: list[_Delivery] = []
                for item in pending:
                    if item.attempts == 0 and self._wh_drop and rng.random() < self._wh_drop:
                        self._dropped.append(self._describe(item, None))
                        continue
                    item.attempts += 1
                    batch.append(item)
                    if self._wh_duplicate and rng.random() < self._wh_duplicate:
                        batch.append(item)
                if self._wh_shuffle:
                    rng.shuffle(batch)
            results: list[tuple[str, int]] = []
            best: dict[str, int] = {}
            for item in batch:
                status = self._post(item, timeout)
                results.append((item.delivery_id, status))
                if 200 <= status < 300 or item.delivery_id not in best:
                    best[item.delivery_id] = status
                with self._lock:
                    self._sent.append(self._describe(item, status))
            with self._lock:
                retry, seen = [], set()
                for item in batch:
                    ok = 200 <= best[item.delivery_id] < 300
                    if not ok and item.delivery_id not in seen and item.attempts <= MAX_DELIVERY_RETRIES:
                        retry.append(item)
                    seen.add(item.delivery_id)
                self._outbox[:0] = retry
            return results

    def events_sent(self) -> list[dict[str, Any]]:
        """Every delivery attempt: delivery_id, webhook_id, event, attempt, status, body (parsed)."""
        with self._lock:
            return [dict(e) for e in self._sent]

    def events_dropped(self) -> list[dict[str, Any]]:
        """Deliveries the ``drop`` knob lost for good (never sent)."""
        with self._lock:
            return [dict(e) for e in self._dropped]

    # ------------------------------------------------------------------ entries

    def entries_snapshot(self) -> list[dict[str, Any]]:
        """Every stored entry, newest first: REST shape plus ``approvalState``/``invoicingState`` (raw: as is)."""
        with self._lock:
            rows = [self._rows[k] for k in _desc(self._order, [(0, len(self._order))])]
        return [self._with_states(row) for row in rows]

    def get_entry(self, entry_id: str) -> dict[str, Any]:
        """One entry like :meth:`entries_snapshot` shows it; ``KeyError`` if absent."""
        with self._lock:
            row = self._rows[self._by_id[entry_id]]
        return self._with_states(row)

    def create_entry(self, **fields: Any) -> dict[str, Any]:
        """Add an entry and fire NEW_TIME_ENTRY; returns its REST JSON.

        Fields use Clockify's names: ``userId``, ``projectId`` (default: the first project; ``None`` = none),
        ``taskId``, ``billable`` (default from project and task), ``description``, ``start``/``end`` (datetime,
        epoch or ISO; ``end=None`` is a running timer; default: the hour before :meth:`now`), ``hourlyRate``/
        ``costRate`` (override the resolved rates: int minor units or ``{amount, currency}``), ``approvalState``,
        ``invoicingState``, and ``id``.
        """
        with self._lock:
            entry_id = fields.pop("id", None) or self._new_id()
            if not (
                isinstance(entry_id, str) and len(entry_id) == 24 and all(c in "0123456789abcdef" for c in entry_id)
            ):
                raise ValueError("id must be 24 lowercase hex characters")
            if entry_id in self._by_id:
                raise ValueError(f"entry {entry_id} already exists")
            now = int(self.now())
            state: dict[str, Any] = {
                "id": entry_id,
                "userId": None,
                "projectId": next(iter(self._projects), None),
                "taskId": None,
                "billable": None,
                "description": "",
                "start": now - 3600,
                "end": now,
                "hourlyRate": None,
                "costRate": None,
                "approvalState": "UNSUBMITTED",
                "invoicingState": "UNINVOICED",
            }
            if "start" in fields and "end" not in fields:
                state["end"] = _epoch(fields["start"], "start") + 3600
            elif "end" in fields and "start" not in fields and fields["end"] is not None:
                state["start"] = _epoch(fields["end"], "end") - 3600
            row = self._build(state, fields, creating=True)
            key = len(self._rows)
            self._rows.append(None)
            self._store(key, row)
            self._by_id[entry_id] = key
            self._emit("NEW_TIME_ENTRY", row.body)
            return json.loads(row.body)

    def update_entry(self, entry_id: str, **fields: Any) -> dict[str, Any]:
        """Change fields (names as in :meth:`create_entry`) and fire TIME_ENTRY_UPDATED; returns the REST JSON.

        Changing user/project/task re-resolves the hourly rate unless ``hourlyRate`` is given too.
        """
        with self._lock:
            key = self._by_id[entry_id]
            if "id" in fields and fields.pop("id") != entry_id:
                raise ValueError("the id of an entry cannot change")
            row = self._build(self._state(self._rows[key]), fields, creating=False)
            self._store(key, row)
            self._emit("TIME_ENTRY_UPDATED", row.body)
            return json.loads(row.body)

    def delete_entry(self, entry: str | int) -> None:
        """Remove an entry from every listing and fire TIME_ENTRY_DELETED with its last state.

        Takes an entry id, or the key :meth:`put_raw_entry` returned (raw rows fire no webhook).
        """
        with self._lock:
            if isinstance(entry, str):
                key = self._by_id[entry]
            elif isinstance(entry, int) and 0 <= entry < len(self._rows) and (r := self._rows[entry]) and r.raw:
                key = entry
            else:
                raise KeyError(entry)
            row = self._rows[key]
            assert row is not None
            self._unlink(key)
            self._rows[key] = None
            if not row.raw:
                del self._by_id[row.id]
                self._emit("TIME_ENTRY_DELETED", row.body)
            self._version += 1

    def approve(self, entry_ids: Iterable[str], state: str = "APPROVED") -> None:
        """Set the approval state (visible only in the detailed report; approved entries are locked).

        Like Clockify, approval fires no time-entry webhook.
        """
        if state not in APPROVAL_STATES:
            raise ValueError(f"state must be one of {APPROVAL_STATES}")
        self._set_states(entry_ids, {"approvalState": state})

    def mark_invoiced(self, entry_ids: Iterable[str], invoiced: bool = True) -> None:
        """Set the invoicing state (visible only in the detailed report); fires no webhook."""
        self._set_states(entry_ids, {"invoicingState": "INVOICED" if invoiced else "UNINVOICED"})

    def put_raw_entry(self, user_id: str, raw: Any) -> int:
        """Store any JSON value verbatim in ``user_id``'s listing and the report; returns a key for delete_entry.

        It sorts by its ``timeInterval.start`` when usable, else it is listed first; it is never filtered out
        by anything but a date range its usable start falls outside of, and fires no webhook.
        """
        body = dumps(raw)
        obj = raw if isinstance(raw, dict) else {}
        interval = obj.get("timeInterval") if isinstance(obj.get("timeInterval"), dict) else {}
        moment = parse_timestamp(interval.get("start"))
        entry_id = obj.get("id") if isinstance(obj.get("id"), str) else None
        row = EntryRow(
            entry_id, str(user_id), int(moment.timestamp()) if moment else None, None, None, None, None, "null",
            None, None, None, None, None, True, body,
        )  # fmt: skip
        with self._lock:
            key = len(self._rows)
            self._rows.append(None)
            self._store(key, row)
            return key

    def edit_random(self, count: int, *, seed: int = 0) -> list[str]:
        """Edit ``count`` random entries (description and end), firing TIME_ENTRY_UPDATED; returns their ids."""
        rng = random.Random(seed)
        with self._lock:
            ids = list(self._by_id)
            chosen = rng.sample(ids, min(max(0, int(count)), len(ids)))
            for n, entry_id in enumerate(chosen):
                row = self._rows[self._by_id[entry_id]]
                assert row is not None and row.start is not None
                end = row.start + rng.randrange(300, 28801)
                if end == row.end:
                    end += 60
                self.update_entry(entry_id, description=f"Edited in sandbox (seed {seed}, #{n})", end=end)
        return chosen

    # ------------------------------------------------------------------ internals: state

    def _new_id(self) -> str:
        while True:
            self._counter += 1
            candidate = object_id(int(self.now()), self._machine, self._counter)
            if candidate not in self._by_id and candidate not in self._webhooks:
                return candidate

    def _with_states(self, row: EntryRow) -> Any:
        obj = json.loads(row.body)
        if not row.raw:
            obj["approvalState"] = row.approval
            obj["invoicingState"] = "INVOICED" if row.invoiced else "UNINVOICED"
        return obj

    def _state(self, row: EntryRow) -> dict[str, Any]:
        return {
            "id": row.id,
            "userId": row.user_id,
            "projectId": row.project_id,
            "taskId": row.task_id,
            "billable": row.billable,
            "description": json.loads(row.description),
            "start": row.start,
            "end": row.end,
            "hourlyRate": {"amount": row.rate, "currency": row.currency},
            "costRate": row.cost,
            "approvalState": row.approval,
            "invoicingState": "INVOICED" if row.invoiced else "UNINVOICED",
        }

    def _build(self, state: dict[str, Any], fields: dict[str, Any], *, creating: bool) -> EntryRow:
        """Apply caller fields to an entry state, keep derived fields consistent, render the row."""
        unknown = set(fields) - _FIELDS
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)}; expected some of {sorted(_FIELDS)}")
        moved = creating or any(k in fields for k in ("userId", "projectId", "taskId"))
        state.update(fields)
        project_id, task_id, user_id = state["projectId"], state["taskId"], state["userId"]
        if project_id is not None and project_id not in self._projects:
            raise ValueError(f"unknown project {project_id}")
        project = self._projects.get(project_id) if project_id else None
        if user_id is None:
            members = [m["userId"] for m in project["memberships"]] if project else []
            user_id = state["userId"] = members[0] if members else next(iter(self._users))
        if user_id not in self._users:
            raise ValueError(f"unknown user {user_id}")
        if "projectId" in fields and "taskId" not in fields and task_id is not None:
            task_id = state["taskId"] = (
                None if project is None or self._tasks[task_id]["projectId"] != project_id else task_id
            )
        task = self._tasks.get(task_id) if task_id else None
        if task_id is not None and (task is None or task["projectId"] != project_id):
            raise ValueError(f"task {task_id} does not belong to project {project_id}")
        user = self._users[user_id]
        if state["billable"] is None:
            state["billable"] = bool(project and project["billable"] and (task is None or task["billable"]))
        rate = fields.get("hourlyRate")
        if rate is None and moved:
            rate = resolve_rate(self._workspace, user, project, task)
        elif rate is None:
            rate = (state["hourlyRate"]["amount"], state["hourlyRate"]["currency"])
        elif isinstance(rate, dict):
            rate = (int(rate["amount"]), str(rate.get("currency", WORKSPACE_CURRENCY)))
        else:
            rate = (int(rate), project["hourlyRate"]["currency"] if project and project["hourlyRate"] else "USD")
        cost = fields.get("costRate")
        if cost is None:
            cost = cost_rate(self._workspace, user) if moved or state["costRate"] is None else state["costRate"]
        elif isinstance(cost, dict):
            cost = cost["amount"]
        start = _epoch(state["start"], "start")
        end = None if state["end"] is None else _epoch(state["end"], "end")
        if end is not None and end < start:
            raise ValueError("end must not be before start")
        if state["approvalState"] not in APPROVAL_STATES:
            raise ValueError(f"approvalState must be one of {APPROVAL_STATES}")
        if state["invoicingState"] not in ("INVOICED", "UNINVOICED"):
            raise ValueError("invoicingState must be INVOICED or UNINVOICED")
        if not isinstance(state["description"], str):
            raise ValueError("description must be a string")
        return make_row(
            id=state["id"],
            user_id=user_id,
            start=start,
            end=end,
            project_id=project_id,
            task_id=task_id,
            billable=bool(state["billable"]),
            description=json.dumps(state["description"], ensure_ascii=False),
            rate=int(rate[0]),
            currency=rate[1],
            cost=int(cost),
            approval=state["approvalState"],
            invoiced=state["invoicingState"] == "INVOICED",
            workspace_id=self.workspace_id,
        )

    def _set_states(self, entry_ids: Iterable[str], fields: dict[str, str]) -> None:
        with self._lock:
            ids = [entry_ids] if isinstance(entry_ids, str) else list(entry_ids)
            keys = [self._by_id[i] for i in ids]  # all or nothing: KeyError before any change
            for key in keys:
                state = self._state(self._rows[key])
                self._store(key, self._build(state, dict(fields), creating=False))

    def _sort_key(self, key: int) -> tuple[int, str, int]:
        row = self._rows[key]
        assert row is not None
        return (_LAST if row.start is None else row.start, row.id or "", key)

    def _unlink(self, key: int) -> None:
        """Take ``key`` out of the orders (call while its row is still the stored one)."""
        sk = self._sort_key(key)
        user = self._rows[key].user_id
        for order in (self._order, self._user_order[user]):
            i = bisect.bisect_left(order, sk, key=self._sort_key)
            if i >= len(order) or order[i] != key:  # pragma: no cover - would be a bug
                raise RuntimeError(f"sort order lost track of {key}")
            del order[i]

    def _store(self, key: int, row: EntryRow) -> None:
        old = self._rows[key]
        if old is not None and (old.start, old.id, old.user_id) == (row.start, row.id, row.user_id):
            self._rows[key] = row  # same position: no need to touch the orders
        else:
            if old is not None:
                self._unlink(key)
            self._rows[key] = row
            for order in (self._order, self._user_order.setdefault(row.user_id, [])):
                bisect.insort(order, key, key=self._sort_key)
        self._version += 1

    def _segments(self, order: list[int], start: int | None, end: int | None) -> list[tuple[int, int]]:
        """Index ranges of ``order`` with start in [start, end]; rows without a usable start always match."""
        n = len(order)
        if start is None and end is None:
            return [(0, n)]
        sk = self._sort_key
        tail = bisect.bisect_left(order, (_LAST,), key=sk)
        lo = 0 if start is None else bisect.bisect_left(order, (start,), key=sk)
        hi = tail if end is None else min(tail, bisect.bisect_left(order, (end + 1,), key=sk))
        return [(tail, n), (lo, max(lo, hi))]

    def _cached(self, signature: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        cached = self._cache.get(signature)
        if cached is not None and cached[0] == self._version:
            self._cache.move_to_end(signature)
            return cached[1]
        value = compute()
        self._cache[signature] = (self._version, value)
        while len(self._cache) > _CACHE_SIGNATURES:
            self._cache.popitem(last=False)
        return value

    # ------------------------------------------------------------------ internals: webhooks

    def _emit(self, event: str, body: bytes) -> None:
        for webhook in self._webhooks.values():
            if event in webhook.events:
                self._outbox.append(_Delivery(str(uuid.uuid4()), webhook, event, body))

    def _describe(self, item: _Delivery, status: int | None) -> dict[str, Any]:
        record = {
            "delivery_id": item.delivery_id,
            "webhook_id": item.webhook.id,
            "event": item.event,
            "attempt": item.attempts,
            "body": json.loads(item.body),
        }
        if status is not None:
            record["status"] = status
        return record

    def _post(self, item: _Delivery, timeout: float) -> int:
        request = urllib.request.Request(  # noqa: S310 - the URL is whatever the test subscribed
            item.webhook.url,
            data=item.body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Clockify-Signature": item.webhook.token,
                "Clockify-Webhook-Event-Type": item.event,
                "Clockify-Webhook-Id": item.webhook.id,
                # Sandbox-added (not a Clockify header): one id per event and webhook, kept on redelivery,
                # so receivers can deduplicate at-least-once deliveries.
                "Clockify-Webhook-Delivery-Id": item.delivery_id,
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                response.read()
                return int(response.status)
        except urllib.error.HTTPError as exc:
            exc.close()
            return int(exc.code)
        except (OSError, ValueError):
            return 0

    # ------------------------------------------------------------------ internals: HTTP

    def _record(self, method: str, target: str, status: int) -> None:
        self._traffic.record(method, target, status)

    def _take_fault(self, path: str) -> Fault | None:
        return self._fault_plan.take(path)

    def _admit(self, workspace: str) -> int | None:
        """Apply the plan's rate limit; returns Retry-After seconds when refused (refusals cost nothing)."""
        with self._lock:
            if self._limit is None:
                return None
            now = self.now()
            if self._limit == "paid":
                tokens, last = self._buckets.get(workspace, (float(PAID_PER_SECOND), now))
                tokens = min(float(PAID_PER_SECOND), tokens + max(0.0, now - last) * PAID_PER_SECOND)
                if tokens >= 1.0 - 1e-3:  # epoch floats near 1.7e9 carry ~1e-7 s of noise, x50 per second
                    self._buckets[workspace] = (max(0.0, tokens - 1.0), now)
                    return None
                self._buckets[workspace] = (tokens, now)
                return 1
            window: deque[float] = self._buckets.setdefault(workspace, deque())
            while window and window[0] <= now - 3600:
                window.popleft()
            if len(window) < FREE_PER_HOUR:
                window.append(now)
                return None
            return max(1, math.ceil(window[0] + 3600 - now))

    def _serve(self, method: str, target: str, headers: Any, body: bytes, host: str = "") -> Response | None:
        """Entry point of the HTTP handler; ``None`` means drop the connection without answering."""
        split = urlsplit(target)
        path = split.path
        if path.startswith("/_sandbox/"):
            return self._control(method, path, body)
        fault = self._take_fault(path)
        kind = fault.kind if fault else None
        if kind == "drop":
            self._record(method, target, 0)
            return None
        if fault is not None and kind == "slow":
            time.sleep(fault.delay)
        if kind == "5xx":
            response = _error(503, "Service Unavailable")
        elif kind == "500":
            response = _error(500, "Internal Server Error")
        elif kind == "429":
            response = _error(429, "Too many requests", [("Retry-After", "1")])
        else:
            try:
                response = self._api(method, path, split.query, headers, body)
            except _BadRequest as exc:
                response = exc.response
        if kind == "malformed":
            response = (200, response[1][: max(1, len(response[1]) // 2)], [])
        self._record(method, target, response[0])
        return response

    def _api(self, method: str, path: str, query: str, headers: Any, body: bytes) -> Response:
        parts = [p for p in path.split("/") if p]
        if parts[:2] == ["api", "v1"]:
            route, reports = parts[2:], False
        elif parts[:2] == ["reports", "v1"]:
            route, reports = parts[2:], True
        else:
            return _error(404, "Not found")
        key = headers.get("X-Api-Key")
        if not key or key != self.api_key:
            return _error(401, "Full authentication is required to access this resource")
        if route[:1] == ["workspaces"] and len(route) > 1 and route[1] != self.workspace_id:
            return _error(403, "Access Denied")
        retry_after = self._admit(self.workspace_id)
        if retry_after is not None:
            return _error(429, "Too many requests", [("Retry-After", str(retry_after))])
        if reports:
            match route:
                case ["workspaces", _, "reports", "detailed"]:
                    if method != "POST":
                        return _error(405, f"Request method '{method}' is not supported")
                    return self._detailed_report(body)
            return _error(404, "Not found")
        if route[2:] == ["time-entries", "invoiced"] and route[:1] == ["workspaces"] and method == "PATCH":
            from sandbox.clockify.invoiced import patch_invoiced

            return patch_invoiced(self, body)
        if method != "GET":
            return _error(405, f"Request method '{method}' is not supported")
        params = dict(parse_qsl(query, keep_blank_values=True))
        with self._lock:
            match route:
                case ["user"]:
                    return 200, dumps(self._users[next(iter(self._users))]), []
                case ["workspaces"]:
                    return 200, dumps([self._workspace]), []
                case ["workspaces", _]:
                    return 200, dumps(self._workspace), []
                case ["workspaces", _, "users"]:
                    return self._list_catalog(self._users.values(), params)
                case ["workspaces", _, "clients"]:
                    return self._list_catalog(self._clients.values(), params)
                case ["workspaces", _, "projects"]:
                    return self._list_catalog(self._projects.values(), params)
                case ["workspaces", _, "projects", pid]:
                    project = self._projects.get(pid)
                    return (200, dumps(project), []) if project else _error(404, "Project not found")
                case ["workspaces", _, "projects", pid, "tasks"]:
                    if pid not in self._projects:
                        return _error(404, "Project not found")
                    return self._list_catalog([t for t in self._tasks.values() if t["projectId"] == pid], params)
                case ["workspaces", _, "expenses"]:
                    return self.expenses.listing(params)
                case ["workspaces", _, "expenses", "categories"]:
                    return self.expenses.categories_listing()
                case ["workspaces", _, "expenses", expense_id]:
                    return self.expenses.get(expense_id) or _error(404, "Expense not found")
                case ["workspaces", _, "time-entries", entry_id]:
                    k = self._by_id.get(entry_id)
                    return (200, self._rows[k].body, []) if k is not None else _error(404, "Time entry not found")
                case ["workspaces", _, "user", user_id, "time-entries"]:
                    return self._list_entries(user_id, params)
        return _error(404, "Not found")

    def _list_catalog(self, objects: Iterable[dict[str, Any]], params: dict[str, str]) -> Response:
        page, size = _paging(params)
        selected = list(objects)
        if "archived" in params:
            wanted = params["archived"].lower() == "true"
            selected = [o for o in selected if o.get("archived") == wanted]
        return 200, dumps(selected[(page - 1) * size : page * size]), []

    def _list_entries(self, user_id: str, params: dict[str, str]) -> Response:
        """One page of a user's entries, newest first, start within [start, end]."""
        if user_id not in self._user_order:
            return _error(404, "User not found")
        page, size = _paging(params)
        start = _bound("start", params["start"], upper=False) if "start" in params else None
        end = _bound("end", params["end"], upper=True) if "end" in params else None
        hydrated = params.get("hydrated", "false").lower() == "true"

        def compute() -> list[int]:
            order = self._user_order[user_id]
            return _desc(order, self._segments(order, start, end))

        keys = self._cached(("user", user_id, start, end), compute)
        rows = [self._rows[k] for k in keys[(page - 1) * size : page * size]]
        bodies = [r.body if r.raw or not hydrated else self._hydrated(r) for r in rows]
        return 200, b"[" + b",".join(bodies) + b"]", []

    def _hydrated(self, row: EntryRow) -> bytes:
        """``hydrated=true``: the entry plus its project, task and tags objects."""
        frags = []
        for name, ident, catalog in (("project", row.project_id, self._projects), ("task", row.task_id, self._tasks)):
            frag = self._hydrate.get(ident)
            if frag is None:
                frag = self._hydrate[ident] = dumps(catalog.get(ident)) if ident else b"null"
            frags.append(b'"' + name.encode() + b'":' + frag)
        return row.body[:-1] + b"," + b",".join(frags) + b',"tags":[]}'

    def _detailed_report(self, body: bytes) -> Response:
        """``POST .../reports/detailed``: the only place approval and invoicing state are visible."""
        try:
            spec = json.loads(body) if body.strip() else None
        except ValueError:
            return _error(400, "Request body is not valid JSON")
        if not isinstance(spec, dict):
            return _error(400, "Request body must be a JSON object")
        for name in ("dateRangeStart", "dateRangeEnd"):
            if not spec.get(name):
                return _error(400, f"{name} is required")
        start = _bound("dateRangeStart", spec["dateRangeStart"], upper=False)
        end = _bound("dateRangeEnd", spec["dateRangeEnd"], upper=True)
        detailed = spec.get("detailedFilter") or {}
        if not isinstance(detailed, dict):
            return _error(400, "detailedFilter must be an object")
        page, size = detailed.get("page", 1), detailed.get("pageSize", DEFAULT_PAGE_SIZE)
        if not (isinstance(page, int) and isinstance(size, int)) or page < 1 or size < 1:
            return _error(400, "detailedFilter.page and pageSize must be integers >= 1")
        size = min(size, MAX_REPORT_PAGE_SIZE)
        if detailed.get("sortColumn", "DATE") != "DATE":
            return _error(400, "the sandbox sorts the detailed report by DATE only")
        descending = spec.get("sortOrder", "DESCENDING") != "ASCENDING"
        approval = spec.get("approvalState", "ALL")
        invoicing = spec.get("invoicingState", "ALL")
        amount_shown = spec.get("amountShown", "EARNED")
        rounding = spec.get("rounding", False)
        billable = spec.get("billable")
        if approval not in ("APPROVED", "UNAPPROVED", "ALL"):
            return _error(400, "approvalState must be APPROVED, UNAPPROVED or ALL")
        if invoicing not in ("INVOICED", "UNINVOICED", "ALL"):
            return _error(400, "invoicingState must be INVOICED, UNINVOICED or ALL")
        if amount_shown not in ("EARNED", "COST"):
            return _error(400, "the sandbox shows amountShown EARNED or COST")
        if not isinstance(rounding, bool) or (billable is not None and not isinstance(billable, bool)):
            return _error(400, "rounding and billable must be booleans")
        selectors = []
        for name in ("users", "projects"):
            selector = spec.get(name)
            if selector is None:
                selectors.append(None)
                continue
            ids, contains = (
                (selector.get("ids"), selector.get("contains", "CONTAINS"))
                if isinstance(selector, dict)
                else (None, None)
            )
            if not isinstance(ids, list) or contains not in ("CONTAINS", "DOES_NOT_CONTAIN"):
                return _error(400, f"{name} must be {{ids: [...], contains: CONTAINS|DOES_NOT_CONTAIN}}")
            selectors.append((frozenset(map(str, ids)), contains == "CONTAINS") if ids else None)
        users, projects = selectors
        signature = ("report", start, end, descending, approval, invoicing, billable, users, projects)
        with self._lock:
            keys = self._cached(signature, lambda: self._report_keys(start, end, descending, *signature[4:]))
            totals = self._cached(
                (*signature, rounding, amount_shown), lambda: self._totals(keys, rounding, amount_shown)
            )
            rows = [self._rows[k] for k in keys[(page - 1) * size : page * size]]
            items = [r.body if r.raw else self._report_item(r, rounding, amount_shown) for r in rows]
        return 200, b'{"totals":' + totals + b',"timeentries":[' + b",".join(items) + b"]}", []

    def _report_keys(
        self,
        start: int,
        end: int,
        descending: bool,
        approval: str,
        invoicing: str,
        billable: bool | None,
        users: tuple[frozenset[str], bool] | None,
        projects: tuple[frozenset[str], bool] | None,
    ) -> list[int]:
        """Report rows in order; running timers are not in reports, raw rows only obey the date range."""
        rows = self._rows
        keys = _desc(self._order, self._segments(self._order, start, end))
        if not descending:
            keys.reverse()
        keys = [k for k in keys if (r := rows[k]).raw or r.end is not None]
        if approval != "ALL":
            approved = approval == "APPROVED"
            keys = [k for k in keys if (r := rows[k]).raw or (r.approval == "APPROVED") == approved]
        if invoicing != "ALL":
            invoiced = invoicing == "INVOICED"
            keys = [k for k in keys if (r := rows[k]).raw or r.invoiced == invoiced]
        if billable is not None:
            keys = [k for k in keys if (r := rows[k]).raw or r.billable == billable]
        if users is not None:
            ids, inside = users
            keys = [k for k in keys if (r := rows[k]).raw or (r.user_id in ids) == inside]
        if projects is not None:
            ids, inside = projects
            keys = [k for k in keys if (r := rows[k]).raw or (r.project_id in ids) == inside]
        return keys

    def _report_numbers(self, row: EntryRow, rounding: bool, amount_shown: str) -> tuple[int, int, int, str]:
        """(duration seconds, rate, amount, currency) of a report row; amounts round half up to minor units."""
        duration = row.end - row.start
        if rounding:
            duration = -(-duration // _ROUND_STEP) * _ROUND_STEP
        if amount_shown == "COST":
            rate, currency = row.cost, WORKSPACE_CURRENCY
            return duration, rate, (rate * duration + 1800) // 3600, currency
        rate = row.rate
        amount = (rate * duration + 1800) // 3600 if row.billable else 0
        return duration, rate, amount, row.currency

    def _totals(self, keys: list[int], rounding: bool, amount_shown: str) -> bytes:
        if not keys:
            return b"[]"
        total = billable_total = amount_sum = 0
        by_currency: dict[str, int] = {}
        rows = self._rows
        numbers = self._report_numbers
        for k in keys:
            row = rows[k]
            if row.raw:
                continue
            duration, _, amount, currency = numbers(row, rounding, amount_shown)
            total += duration
            if row.billable:
                billable_total += duration
            amount_sum += amount
            by_currency[currency] = by_currency.get(currency, 0) + amount
        return dumps(
            [
                {
                    "_id": "",
                    "totalTime": total,
                    "totalBillableTime": billable_total,
                    "entriesCount": len(keys),
                    "totalAmount": amount_sum,
                    "amounts": [
                        {
                            "type": amount_shown,
                            "value": amount_sum,
                            "amountByCurrencies": [
                                {"currency": c, "amount": a} for c, a in sorted(by_currency.items())
                            ],
                        }
                    ],
                }
            ]
        )

    def _report_context(self, row: EntryRow) -> str:
        """The user/project/client/task part of a report item, cached per combination."""
        signature = (row.user_id, row.project_id, row.task_id)
        frag = self._ctx.get(signature)
        if frag is None:
            user = self._users.get(row.user_id) or {}
            project = self._projects.get(row.project_id) or {}
            task = self._tasks.get(row.task_id) or {}
            frag = dumps(
                {
                    "userId": row.user_id,
                    "userName": user.get("name"),
                    "userEmail": user.get("email"),
                    "projectId": row.project_id,
                    "projectName": project.get("name"),
                    "projectColor": project.get("color"),
                    "clientId": project.get("clientId"),
                    "clientName": project.get("clientName"),
                    "taskId": row.task_id,
                    "taskName": task.get("name"),
                }
            ).decode()[1:-1]
            self._ctx[signature] = frag
        return frag

    def _report_item(self, row: EntryRow, rounding: bool, amount_shown: str) -> bytes:
        """One detailed-report item (numbers computed inline: this runs a million times per full pull)."""
        start, end = row.start, row.end
        duration = end - start
        if rounding:
            duration = -(-duration // _ROUND_STEP) * _ROUND_STEP
        if amount_shown == "COST":
            rate, currency = row.cost, WORKSPACE_CURRENCY
            amount = (rate * duration + 1800) // 3600
        else:
            rate, currency = row.rate, row.currency
            amount = (rate * duration + 1800) // 3600 if row.billable else 0
        ctx = self._ctx.get((row.user_id, row.project_id, row.task_id)) or self._report_context(row)
        locked = _JB[row.approval == "APPROVED" or row.invoiced]
        return (
            f'{{"_id":"{row.id}","description":{row.description},{ctx},"billable":{_JB[row.billable]},'
            f'"timeInterval":{{"start":"{stamp(start)}","end":"{stamp(end)}","duration":{duration}}},'
            f'"rate":{rate},"amount":{amount},"currency":"{currency}","approvalState":"{row.approval}",'
            f'"invoicingState":"{_INVOICING[row.invoiced]}","isLocked":{locked},'
            f'"tagIds":[],"tags":[],"type":"REGULAR"}}'
        ).encode()

    def _control(self, method: str, path: str, body: bytes) -> Response:
        """``/_sandbox/*``: the Python API over HTTP, for harnesses in another process (no auth)."""
        try:
            args: Any = json.loads(body) if body.strip() else {}
        except ValueError:
            return _error(400, "body is not JSON")
        if not isinstance(args, dict):
            return _error(400, "body must be a JSON object")
        parts = [p for p in path.split("/")[2:] if p]
        try:
            match method, parts:
                case "GET", ["stats"]:
                    stats = self.stats()
                    stats["status_counts"] = {str(k): v for k, v in stats["status_counts"].items()}
                    return 200, dumps(stats), []
                case "GET", ["health"]:
                    with self._lock:
                        return 200, dumps({"ok": True, "entries": len(self._by_id)}), []
                case "POST", ["reset_stats"]:
                    self.reset_stats()
                case "POST", ["faults"]:
                    self.inject_fault(**args)
                    return 201, dumps({"ok": True}), []
                case "DELETE", ["faults"]:
                    self.clear_faults()
                case "POST", ["edit_random"]:
                    ids = self.edit_random(int(args["count"]), seed=int(args.get("seed", 0)))
                    return 200, dumps({"ids": ids}), []
                case "POST", ["limit"]:
                    self.set_limit(args.get("limit"))
                case "POST", ["advance"]:
                    self.advance(float(args["seconds"]))
                case "POST", ["webhooks"]:
                    webhook_id, token = self.add_webhook(args["url"], args.get("events", WEBHOOK_EVENTS))
                    return 201, dumps({"id": webhook_id, "authToken": token}), []
                case "POST", ["webhook_faults"]:
                    self.webhook_faults(**args)
                case "POST", ["deliver"]:
                    return 200, dumps({"deliveries": self.deliver()}), []
                case "GET", ["events_sent"]:
                    return 200, dumps(self.events_sent()), []
                case "POST", ["time_entries"]:
                    return 201, dumps(self.create_entry(**args)), []
                case "PATCH", ["time_entries", entry_id]:
                    return 200, dumps(self.update_entry(entry_id, **args)), []
                case "DELETE", ["time_entries", entry_id]:
                    self.delete_entry(entry_id)
                case "POST", ["approve"]:
                    self.approve(args["ids"], args.get("state", "APPROVED"))
                case "POST", ["mark_invoiced"]:
                    self.mark_invoiced(args["ids"], bool(args.get("invoiced", True)))
                case "POST", ["raw_entries"]:
                    return 201, dumps({"key": self.put_raw_entry(args["userId"], args.get("entry"))}), []
                case _:
                    return _error(404, "Not found")
        except KeyError as exc:
            return _error(404, f"no such item {exc}")
        except (TypeError, ValueError) as exc:
            return _error(400, str(exc))
        return 200, dumps({"ok": True}), []
