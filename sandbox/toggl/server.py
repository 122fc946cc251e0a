"""A stateful local HTTP server speaking Toggl Track API v9 and Reports API v3, for tests, the demo and benchmarks.

The state lives in :class:`TogglSandbox`; tests mutate it in-process (or over ``/_sandbox/*`` from another
process) and the pipeline under test reads it over HTTP exactly as it would read api.track.toggl.com.

Behaviour worth knowing (where Toggl leaves room, the sandbox picks one documented answer):

* Auth is HTTP Basic ``<token>:api_token``; anything else is a 403 with a plain-text body. A 403 for bad
  credentials carries no quota headers (no user to count against).
* Quotas are fixed one-hour windows opened by the first counted request: the workspace/reports quota
  (``quota``: 600/240/30 by plan, ``None`` = unlimited, then no quota headers) and a separate ``me_quota``
  (30) for everything under ``/api/v9/me``, whose responses report that quota in their headers. 402 and 429
  answers consume nothing. The short-term limit is a token bucket (``short_term=(burst, per_seconds)``).
* ``/me/time_entries``: ``since`` (unix seconds, at most 90 days back) returns the owner's entries with
  ``at >= since`` including tombstones; ``start_date`` (inclusive) / ``end_date`` / ``before`` (exclusive)
  filter live entries by start; no parameter returns all live entries. Sorted by start, newest first.
* Reports rows group finished, non-deleted entries of the whole workspace by (user, project, task, billable,
  description, tag_ids); rows are ordered by their first entry's (start, id), entries inside a row likewise.
  ``hourly_rate_in_cents`` is the resolved rate whether or not the row is billable (look at ``billable``);
  its currency is the project's when the rate came from the project or its member, else the workspace's.
* Raw entries (:meth:`TogglSandbox.put_raw_entry`) are served as given; a field that is missing or
  unusable never excludes them from a filter, and each forms its own report row.

Performance notes (a benchmark pulls a million entries through the reports endpoint): every entry keeps its
report JSON pre-rendered; entries are kept sorted by (start, id) so a date range is two bisections; the
grouped row list is cached per (filters, state version); a page is a ``b",".join`` of cached fragments.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import contextlib
import copy
import gc
import hashlib
import hmac
import json
import math
import random
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlsplit

from sandbox.serving import BackgroundServer, Fault, FaultPlan, Response, Traffic
from sandbox.toggl.data import (
    Dataset,
    EntryRow,
    dumps,
    entry_object,
    format_timestamp,
    generate_dataset,
    parse_timestamp,
    render_entry,
    render_frag,
    to_minor_units,
)

__all__ = ["FAULT_KINDS", "WEBHOOK_ACTIONS", "TogglSandbox"]

FAULT_KINDS = ("5xx", "drop", "slow", "malformed", "429", "402")
WEBHOOK_ACTIONS = ("created", "updated", "deleted")
WEBHOOK_RETRIES = 3
API_PREFIX = "/api/v9"
REPORTS_PREFIX = "/reports/api/v3"
VALIDATE_PREFIX = "/webhooks/api/v1/validate/"
QUOTA_WINDOW = 3600
SINCE_MAX_AGE = 90 * 86400  # "3 months"
MAX_REPORT_DAYS = 366
DEFAULT_REPORT_PAGE = 50
MAX_REPORT_PAGE = 1000
MAX_PROJECTS_PAGE = 200
LOG_SIZE = 10_000
_CACHE_SIGNATURES = 4
_DEFAULT_TOKEN = "1971800d4d82861d8f2c1651fea4d212"  # a well-known fake credential (Toggl's docs example)
_ENTRY_FIELDS = frozenset(
    ("workspace_id", "project_id", "task_id", "user_id", "billable", "start", "stop", "duration", "description")
) | {"tags", "tag_ids"}
_FORBIDDEN = "Incorrect username and/or password"


def _json(status: int, obj: Any, headers: list[tuple[str, str]] | None = None) -> Response:
    return status, dumps(obj), list(headers or [])


def _text(status: int, message: str, headers: list[tuple[str, str]] | None = None) -> Response:
    return status, message.encode(), [("Content-Type", "text/plain; charset=utf-8"), *(headers or [])]


class _BadRequest(Exception):
    """A query/body the sandbox refuses; Toggl answers these with a JSON string body."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.response = _json(status, message)


@dataclass
class _Subscription:
    id: int
    url: str
    secret: str
    events: tuple[str, ...]
    validation_code: str
    validated: bool = False


@dataclass
class _Event:
    event_id: int
    subscription_id: int
    action: str
    payload: dict[str, Any]
    created_at: str
    attempts: int = 0


@dataclass
class _ReportCache:
    version: int
    rows: list[_ReportRow]
    first_ids: dict[Any, int] | None = field(default=None)


class _Frag(NamedTuple):
    """A report element of a raw entry (normal rows use :class:`EntryRow`, which also has ``frag``)."""

    frag: bytes


class _ReportRow(NamedTuple):
    start: int
    first_id: Any
    header: bytes  # the row object up to and including ``"row_number":``
    members: list[Any]  # EntryRow / _Frag, each with .frag


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _scalar(value: Any) -> str:
    """JSON for the scalars of a row header, fast for the common int/None/bool cases."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is int:
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def _day_start(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def _parse_day_or_time(name: str, value: str) -> int:
    """``YYYY-MM-DD`` (midnight UTC) or RFC 3339 -> epoch seconds."""
    try:
        return _day_start(date.fromisoformat(value)) if len(value) == 10 else _strict_time(value)
    except ValueError:
        raise _BadRequest(f"{name}: expected YYYY-MM-DD or RFC 3339, got {value!r}") from None


def _strict_time(value: str) -> int:
    parsed = parse_timestamp(value)
    if parsed is None:
        raise ValueError(value)
    return parsed


def _int_list(name: str, value: Any, allow_null: bool = False) -> frozenset[Any] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(_is_int(v) or (allow_null and v is None) for v in value):
        raise _BadRequest(f"{name} must be a list of integers")
    return frozenset(value)


def _optional_int(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if not _is_int(value):
        raise _BadRequest(f"{name} must be an integer")
    return value


class TogglSandbox:
    """In-memory Toggl Track workspace plus an HTTP server serving API v9 and Reports API v3 from it."""

    def __init__(
        self,
        *,
        token: str = _DEFAULT_TOKEN,
        quota: int | None = 600,
        me_quota: int | None = 30,
        short_term: tuple[int, float] | None = (3, 1.0),
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.token = token
        self._clock = clock or _utc_now
        self._offset = 0.0
        self._lock = threading.RLock()
        self._traffic = Traffic(LOG_SIZE)
        self._fault_plan = FaultPlan(FAULT_KINDS)
        self._server = BackgroundServer(
            "TogglSandbox",
            self._serve,
            lambda exc: _json(500, {"message": f"sandbox error: {exc!r}"}),
        )
        self._quota: int | None = None
        self._me_quota: int | None = None
        self._windows: dict[str, list[Any]] = {"org": [None, 0], "me": [None, 0]}
        self._short_term: tuple[int, float] | None = None
        self._bucket: tuple[float, float] | None = None
        self.set_quota(quota)
        self.set_me_quota(me_quota)
        self.set_short_term(short_term)
        self._subscriptions: dict[int, _Subscription] = {}
        self._outbox: list[_Event] = []
        self._sent: list[dict[str, Any]] = []
        self._next_event_id = 1_000_000
        self._next_subscription_id = 5_000
        self.webhook_faults()
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self.reset_stats()
        self.load(generate_dataset(0, seed=0))

    # ------------------------------------------------------------------ lifecycle

    def load(self, dataset: Dataset) -> None:
        """Replace the workspace and its entries with ``dataset`` (subscriptions and knobs stay)."""
        rows = {row.id: row for row in dataset.entries}
        if len(rows) != len(dataset.entries):
            raise ValueError("dataset entries need unique ids")
        with self._lock:
            self._rows: dict[int, EntryRow] = rows
            self._order: list[int] = [row.id for row in dataset.entries]
            self.owner_id: int = dataset.owner_id
            self.workspace_id: int = dataset.workspace["id"]
            self.organization_id: int = dataset.organization_id
            self._owner_keys: set[int] = {row.id for row in dataset.entries if row.user_id == dataset.owner_id}
            self._raw: dict[int, dict[str, Any]] = {}
            self._next_raw_key = -1
            self._workspace = copy.deepcopy(dataset.workspace)
            self._clients = {c["id"]: copy.deepcopy(c) for c in dataset.clients}
            self._projects = {p["id"]: copy.deepcopy(p) for p in dataset.projects}
            self._tasks = {t["id"]: copy.deepcopy(t) for t in dataset.tasks}
            self._tags = {t["id"]: copy.deepcopy(t) for t in dataset.tags}
            self._users = {u["id"]: copy.deepcopy(u) for u in dataset.users}
            self._workspace_users = {wu["user_id"]: copy.deepcopy(wu) for wu in dataset.workspace_users}
            self._project_users = {(pu["project_id"], pu["user_id"]): copy.deepcopy(pu) for pu in dataset.project_users}
            self._max_id = max(rows, default=3_300_000_000)
            catalog = (*dataset.clients, *dataset.projects, *dataset.tasks, *dataset.tags, *dataset.users)
            stamps = [row.at for row in dataset.entries] + [parse_timestamp(o["at"]) or 0 for o in catalog]
            # Mutation stamps start after everything loaded, so an incremental sync can never miss an edit.
            self._last_stamp = max(stamps, default=0)
            self._version = getattr(self, "_version", 0) + 1
            self._report_cache: OrderedDict[tuple[Any, ...], _ReportCache] = OrderedDict()

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve in a background thread; returns the base URL (``http://host:port``, no path)."""
        return self._server.start(host, port)

    def stop(self) -> None:
        """Stop serving and close every open keep-alive connection."""
        self._server.stop()

    @property
    def url(self) -> str:
        """Base URL of the running server (API under ``/api/v9``, reports under ``/reports/api/v3``)."""
        if not self._server.running:
            raise RuntimeError("sandbox not started")
        return self._server.base_url

    @property
    def auth(self) -> tuple[str, str]:
        """``(username, password)`` for HTTP Basic, as Toggl wants it: the token and the word ``api_token``."""
        return self.token, "api_token"

    def auth_headers(self) -> dict[str, str]:
        """The Authorization header a well-behaved client sends."""
        credentials = base64.b64encode(f"{self.token}:api_token".encode()).decode()
        return {"Authorization": f"Basic {credentials}"}

    def __enter__(self) -> TogglSandbox:
        if not self._server.running:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ clock and limits

    def now(self) -> datetime:
        """The sandbox clock: the injected clock shifted by everything passed to :meth:`advance`."""
        return self._clock().astimezone(UTC) + timedelta(seconds=self._offset)

    def advance(self, seconds: float) -> None:
        """Move the sandbox clock forward (quota windows, the short-term bucket and stamps all follow it)."""
        with self._lock:
            self._offset += float(seconds)

    def set_quota(self, quota: int | None) -> None:
        """Hourly workspace/reports quota per user (600/240/30 by plan; ``None`` = unlimited); restarts windows."""
        if quota is not None and int(quota) < 0:
            raise ValueError("quota must be >= 0 or None")
        with self._lock:
            self._quota = None if quota is None else int(quota)
            self._windows["org"] = [None, 0]

    def set_me_quota(self, me_quota: int | None) -> None:
        """Hourly quota of calls under ``/api/v9/me`` (Toggl: 30 on every plan; ``None`` = unlimited)."""
        if me_quota is not None and int(me_quota) < 0:
            raise ValueError("me_quota must be >= 0 or None")
        with self._lock:
            self._me_quota = None if me_quota is None else int(me_quota)
            self._windows["me"] = [None, 0]

    def set_short_term(self, short_term: tuple[int, float] | None) -> None:
        """``(burst, per_seconds)``: bursts of ``burst``, then one request per ``per_seconds``; ``None`` = off."""
        if short_term is not None:
            burst, per_seconds = int(short_term[0]), float(short_term[1])
            if burst < 1 or per_seconds <= 0:
                raise ValueError("short_term needs burst >= 1 and per_seconds > 0")
            short_term = (burst, per_seconds)
        with self._lock:
            self._short_term = short_term
            self._bucket = None

    def quota_status(self) -> dict[str, Any]:
        """Remaining requests and seconds to reset for both quotas, without consuming anything."""
        now = self.now().timestamp()
        with self._lock:
            return {name: self._quota_peek(name, now) for name in ("org", "me")}

    # ------------------------------------------------------------------ faults and stats

    def inject_fault(
        self, kind: str, *, times: int = 1, path_prefix: str = "/", after: int = 0, delay: float = 0.0
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
        """Every live (not deleted) entry as API v9 objects in (start, id) order, then live raw entries."""
        with self._lock:
            rows = [row for row in map(self._rows.__getitem__, self._order) if row.deleted_at is None]
            raws = [copy.deepcopy(r) for r in self._raw.values() if not r.get("server_deleted_at")]
        gc_was_enabled = gc.isenabled()
        gc.disable()  # a million fresh dicts would trigger full collections over and over
        try:
            return [entry_object(row) for row in rows] + raws
        finally:
            if gc_was_enabled:
                gc.enable()

    def get_entry(self, entry_id: int) -> dict[str, Any]:
        """One entry (tombstones included, raw keys too); ``KeyError`` if absent."""
        with self._lock:
            if entry_id in self._raw:
                return copy.deepcopy(self._raw[entry_id])
            return entry_object(self._rows[entry_id])

    def create_entry(self, **fields: Any) -> dict[str, Any]:
        """Add a finished entry (defaults: the owner, their first project, the hour before now) and emit
        ``created``. Times may be datetimes, ISO strings or epoch seconds; ``stop=None`` starts a timer."""
        with self._lock:
            entry_id = fields.pop("id", None)
            if entry_id is None:
                entry_id = self._max_id + 4
            if not _is_int(entry_id) or entry_id <= 0:
                raise ValueError("id must be a positive integer")
            if entry_id in self._rows:
                raise ValueError(f"entry {entry_id} already exists")
            stamp = self._stamp()
            now = int(self.now().timestamp())
            memberships = sorted(p for (p, u) in self._project_users if u == self.owner_id)
            project_id = memberships[0] if memberships else next(iter(self._projects), None)
            defaults = {
                "workspace_id": self.workspace_id,
                "project_id": project_id,
                "task_id": None,
                "user_id": self.owner_id,
                "billable": None,
                "start": now - 3600,
                "stop": now,
                "description": "",
            }
            row = self._compose(entry_id, None, fields, stamp, defaults)
            self._put(row)
            self._max_id = max(self._max_id, entry_id)
            self._emit("created", row)
            return entry_object(row)

    def update_entry(self, entry_id: int, **fields: Any) -> dict[str, Any]:
        """Change fields of a live entry, bump ``at`` (strictly increasing) and emit ``updated``."""
        with self._lock:
            current = self._rows.get(entry_id)
            if current is None or current.deleted_at is not None:
                raise KeyError(entry_id)
            if "id" in fields and fields.pop("id") != entry_id:
                raise ValueError("the id of an entry cannot change")
            row = self._compose(entry_id, current, fields, self._stamp())
            self._put(row)
            self._emit("updated", row)
            return entry_object(row)

    def delete_entry(self, entry_id: int) -> None:
        """Delete an entry: it leaves reports and date listings but stays as a tombstone (``server_deleted_at``
        set, ``at`` bumped) for ``/me/time_entries?since``; emits ``deleted``. Raw keys are removed outright."""
        with self._lock:
            if entry_id in self._raw:
                del self._raw[entry_id]
                self._version += 1
                return
            current = self._rows.get(entry_id)
            if current is None or current.deleted_at is not None:
                raise KeyError(entry_id)
            stamp = self._stamp()
            frag = render_frag(current.id, current.duration, current.start, current.stop, stamp)
            row = current._replace(at=stamp, deleted_at=stamp, frag=frag)
            self._put(row)
            self._emit("deleted", row)

    def put_raw_entry(self, raw: dict[str, Any]) -> int:
        """Store any JSON object verbatim (to inject bad records, e.g. a finished entry with a negative
        duration or no id); both APIs return it as given. Returns its key (negative), usable with delete_entry."""
        if not isinstance(raw, dict):
            raise TypeError("a raw entry must be a JSON object")
        dumps(raw)  # refuse what cannot be served
        with self._lock:
            key = self._next_raw_key
            self._next_raw_key -= 1
            self._raw[key] = copy.deepcopy(raw)
            self._version += 1
            return key

    def edit_random(self, count: int, *, seed: int = 0) -> list[int]:
        """Edit ``count`` random live finished entries (duration and description); returns their ids."""
        rng = random.Random(seed)
        with self._lock:
            rows = self._rows
            ids = [k for k in self._order if rows[k].deleted_at is None and rows[k].stop is not None]
            chosen = rng.sample(ids, min(max(0, int(count)), len(ids)))
            for n, entry_id in enumerate(chosen):
                duration = 300 + rng.randrange(28_500)
                if duration == rows[entry_id].duration:
                    duration += 60
                self.update_entry(entry_id, duration=duration, description=f"Edited in sandbox (seed {seed}, #{n})")
        return chosen

    # ------------------------------------------------------------------ rates

    def set_project_rate(self, project_id: int, rate: float | None, *, currency: str | None = None) -> dict[str, Any]:
        """Set a project's hourly rate (major units; ``None`` clears it) and optionally its currency."""
        with self._lock:
            project = self._projects[project_id]
            stamp = format_timestamp(self._stamp())
            project["rate"] = None if rate is None else float(rate)
            if currency is not None:
                project["currency"] = str(currency)
            project["rate_last_updated"] = stamp
            project["at"] = stamp
            self._version += 1
            return copy.deepcopy(project)

    def set_project_user_rate(self, project_id: int, user_id: int, rate: float | None) -> dict[str, Any]:
        """Set a project member's rate (in the project's currency), adding the membership if needed."""
        with self._lock:
            if project_id not in self._projects or user_id not in self._users:
                raise KeyError((project_id, user_id))
            stamp = format_timestamp(self._stamp())
            member = self._project_users.get((project_id, user_id))
            if member is None:
                ids = [pu["id"] for pu in self._project_users.values()]
                member = self._project_users[(project_id, user_id)] = {
                    "id": max(ids, default=140_000_000) + 3,
                    "project_id": project_id,
                    "user_id": user_id,
                    "workspace_id": self.workspace_id,
                    "manager": False,
                }
            member.update({"rate": None if rate is None else float(rate), "rate_last_updated": stamp, "at": stamp})
            self._version += 1
            return copy.deepcopy(member)

    def set_workspace_user_rate(self, user_id: int, rate: float | None) -> dict[str, Any]:
        """Set a user's workspace-level rate (in the workspace currency)."""
        with self._lock:
            member = self._workspace_users[user_id]
            stamp = format_timestamp(self._stamp())
            member.update({"rate": None if rate is None else float(rate), "rate_last_updated": stamp, "at": stamp})
            self._version += 1
            return copy.deepcopy(member)

    def resolved_rate(self, user_id: int | None, project_id: int | None) -> tuple[int | None, str]:
        """``(hourly rate in minor units, currency)`` with Toggl's precedence: project member > project >
        workspace member > workspace default."""
        with self._lock:
            return self._resolve_rate(user_id, project_id)

    # ------------------------------------------------------------------ webhooks

    def subscribe(self, url: str, secret: str, *, events: Iterable[str] = WEBHOOK_ACTIONS) -> int:
        """Register a webhook endpoint for time entry events and send it the validation ping.

        The subscription is validated when the endpoint answers the ping with 200 and
        ``{"validation_code": <code>}``, or later when ``validation_code_url`` is fetched.
        """
        if not url.startswith(("http://", "https://")):
            raise ValueError("url must be http(s)")
        wanted = tuple(events)
        if not wanted or any(e not in WEBHOOK_ACTIONS for e in wanted):
            raise ValueError(f"events must be a non-empty subset of {WEBHOOK_ACTIONS}")
        with self._lock:
            self._next_subscription_id += 1
            sub = _Subscription(self._next_subscription_id, url, str(secret), wanted, str(uuid.uuid4()))
            self._subscriptions[sub.id] = sub
        validation_url = f"{self._server.base_url or ''}{VALIDATE_PREFIX}{sub.id}/{sub.validation_code}"
        ping = dumps({"payload": "ping", "validation_code": sub.validation_code, "validation_code_url": validation_url})
        status, body = self._post(url, ping, sub.secret)
        if status == 200:
            with contextlib.suppress(ValueError, AttributeError):
                if json.loads(body).get("validation_code") == sub.validation_code:
                    with self._lock:
                        sub.validated = True
        return sub.id

    def unsubscribe(self, subscription_id: int) -> None:
        """Forget a subscription; its pending events are discarded."""
        with self._lock:
            del self._subscriptions[subscription_id]
            self._outbox = [e for e in self._outbox if e.subscription_id != subscription_id]

    def subscriptions(self) -> list[dict[str, Any]]:
        """Every subscription with its validation state."""
        with self._lock:
            return [
                {"id": s.id, "url": s.url, "events": list(s.events), "validated": s.validated}
                for s in self._subscriptions.values()
            ]

    def webhook_faults(self, duplicate: float = 0.0, shuffle: bool = False, drop: float = 0.0, seed: int = 0) -> None:
        """Delivery misbehaviour: probability of sending an event twice, shuffling a batch, losing an event."""
        if not (0.0 <= duplicate <= 1.0 and 0.0 <= drop <= 1.0):
            raise ValueError("duplicate and drop are probabilities")
        with self._lock:
            self._wh_duplicate, self._wh_shuffle, self._wh_drop = float(duplicate), bool(shuffle), float(drop)
            self._wh_rng = random.Random(seed)

    def pending_events(self) -> int:
        """Events waiting in the outbox (new ones and failed ones due for a retry)."""
        with self._lock:
            return len(self._outbox)

    def deliver(self) -> list[tuple[int, int | None]]:
        """POST every pending event now; returns ``(event_id, status)`` per attempt (0 = connection failed,
        ``None`` = dropped by the fault knob). Failed events are retried by later calls, up to 3 times."""
        with self._lock:
            batch, self._outbox = sorted(self._outbox, key=lambda e: e.event_id), []
            rng = self._wh_rng
            duplicate, shuffle, drop = self._wh_duplicate, self._wh_shuffle, self._wh_drop
            if shuffle:
                rng.shuffle(batch)
            plan = [(event, rng.random() < drop, rng.random() < duplicate) for event in batch]
        results: list[tuple[int, int | None]] = []
        retry: list[_Event] = []
        for event, dropped, twice in plan:
            with self._lock:
                sub = self._subscriptions.get(event.subscription_id)
            if sub is None:
                continue
            if dropped:
                results.append((event.event_id, None))
                continue
            event.attempts += 1
            delivered = False
            for _ in range(2 if twice else 1):
                body = dumps(self._event_body(event))
                status, _ = self._post(sub.url, body, sub.secret)
                results.append((event.event_id, status))
                delivered = delivered or 200 <= status < 300
                with self._lock:
                    self._sent.append(
                        {
                            "event_id": event.event_id,
                            "subscription_id": sub.id,
                            "action": event.action,
                            "entry_id": event.payload.get("id"),
                            "attempt": event.attempts,
                            "status": status,
                            "event": json.loads(body),
                        }
                    )
            if not delivered and event.attempts <= WEBHOOK_RETRIES:
                retry.append(event)
        with self._lock:
            self._outbox = sorted(retry + self._outbox, key=lambda e: e.event_id)
        return results

    def events_sent(self) -> list[dict[str, Any]]:
        """Every POST made by :meth:`deliver` (duplicates and retries included), oldest first."""
        with self._lock:
            return copy.deepcopy(self._sent)

    # ------------------------------------------------------------------ internals: state

    def _stamp(self) -> int:
        """Next mutation timestamp: the clock, but strictly after the previous stamp."""
        now = int(self.now().timestamp())
        if now <= self._last_stamp:
            now = self._last_stamp + 1
        self._last_stamp = now
        return now

    def _sort_key(self, key: int) -> tuple[int, int]:
        return (self._rows[key].start, key)

    def _put(self, row: EntryRow) -> None:
        """Store a row, keeping the (start, id) order and the owner index."""
        old = self._rows.get(row.id)
        if old is not None and old.start == row.start:
            self._rows[row.id] = row
        else:
            order = self._order
            if old is not None:
                i = bisect.bisect_left(order, self._sort_key(row.id), key=self._sort_key)
                if i >= len(order) or order[i] != row.id:  # pragma: no cover - would be a bug
                    raise RuntimeError(f"sort order lost track of {row.id}")
                del order[i]
            self._rows[row.id] = row
            bisect.insort(order, row.id, key=self._sort_key)
        if row.user_id == self.owner_id:
            self._owner_keys.add(row.id)
        else:
            self._owner_keys.discard(row.id)
        self._version += 1

    def _compose(
        self,
        entry_id: int,
        current: EntryRow | None,
        fields: dict[str, Any],
        stamp: int,
        defaults: dict[str, Any] | None = None,
    ) -> EntryRow:
        """Build the new row from ``current`` (or ``defaults``) and caller ``fields``, keeping ``start``,
        ``stop`` and ``duration`` consistent: what the caller gave wins, the rest follow (a new ``start``
        alone moves a finished entry, keeping its duration; ``stop=None`` makes it run)."""
        unknown = set(fields) - _ENTRY_FIELDS
        if unknown:
            raise ValueError(f"unknown time entry fields {sorted(unknown)}; expected some of {sorted(_ENTRY_FIELDS)}")
        value = {**(current._asdict() if current is not None else defaults or {}), **fields}
        user_id, project_id, task_id = value.get("user_id"), value.get("project_id"), value.get("task_id")
        if user_id not in self._users:
            raise ValueError(f"unknown user {user_id}")
        if project_id is not None and project_id not in self._projects:
            raise ValueError(f"unknown project {project_id}")
        if task_id is not None and task_id not in self._tasks:
            raise ValueError(f"unknown task {task_id}")
        billable = value.get("billable")
        if billable is None:
            billable = bool(project_id is not None and self._projects[project_id]["billable"])
        start = parse_timestamp(value.get("start"))
        if start is None:
            raise ValueError(f"unusable start {value.get('start')!r}")
        stop = parse_timestamp(value["stop"]) if value.get("stop") is not None else None
        if value.get("stop") is not None and stop is None:
            raise ValueError(f"unusable stop {value['stop']!r}")
        if "duration" in fields:
            duration = int(fields["duration"])
            if "stop" not in fields:  # the stop follows the new duration (none while running)
                stop = start + duration if duration >= 0 else None
        elif current is not None and "stop" not in fields and stop is not None:
            duration = current.duration  # a moved start keeps the duration: the stop moves along
            stop = start + duration
        elif current is None or "start" in fields or "stop" in fields:
            duration = stop - start if stop is not None else -start
        else:
            duration = current.duration
        if stop is not None and stop < start:
            raise ValueError("stop is before start")
        tags, tag_ids = self._tags_for(fields, current)
        description = value.get("description")
        return EntryRow(
            id=entry_id,
            workspace_id=int(value.get("workspace_id") or self.workspace_id),
            project_id=project_id,
            task_id=task_id,
            user_id=user_id,
            billable=bool(billable),
            start=start,
            stop=stop,
            duration=duration,
            description=None if description is None else str(description),
            tags=tags,
            tag_ids=tag_ids,
            at=stamp,
            deleted_at=None,
            frag=render_frag(entry_id, duration, start, stop, stamp),
        )

    def _tags_for(self, fields: dict[str, Any], current: EntryRow | None) -> tuple[tuple[str, ...], tuple[int, ...]]:
        """Tag names and ids agree: ids name existing tags; unknown names become new tags."""
        if "tag_ids" in fields and fields["tag_ids"] is not None:
            ids = tuple(int(i) for i in fields["tag_ids"])
            if any(i not in self._tags for i in ids):
                raise ValueError(f"unknown tag ids in {ids}")
            return tuple(self._tags[i]["name"] for i in ids), ids
        if "tags" in fields:
            names = tuple(str(n) for n in fields["tags"] or ())
            by_name = {t["name"]: t["id"] for t in self._tags.values()}
            for name in names:
                if name not in by_name:
                    tag_id = max(self._tags, default=1_900_000) + 5
                    stamp = format_timestamp(self._stamp())
                    self._tags[tag_id] = {"id": tag_id, "workspace_id": self.workspace_id, "name": name, "at": stamp}
                    by_name[name] = tag_id
            return names, tuple(by_name[n] for n in names)
        return (current.tags, current.tag_ids) if current is not None else ((), ())

    def _emit(self, action: str, row: EntryRow) -> None:
        """Queue one event per validated subscription that wants ``action``."""
        targets = [s for s in self._subscriptions.values() if s.validated and action in s.events]
        if not targets:
            return
        payload = entry_object(row)
        created_at = format_timestamp(self.now())
        for sub in targets:
            self._next_event_id += 1
            self._outbox.append(_Event(self._next_event_id, sub.id, action, copy.deepcopy(payload), created_at))

    def _event_body(self, event: _Event) -> dict[str, Any]:
        payload = event.payload
        workspace_id = payload.get("workspace_id")
        return {
            "event_id": event.event_id,
            "created_at": event.created_at,
            "creator_id": payload.get("user_id"),
            "metadata": {
                "action": event.action,
                "event_user_id": payload.get("user_id"),
                "model": "time_entry",
                "path": f"/api/v9/workspaces/{workspace_id}/time_entries/{payload.get('id')}",
                "workspace_id": workspace_id,
            },
            "payload": payload,
            "subscription_id": event.subscription_id,
            "timestamp": format_timestamp(self.now()),
        }

    def _post(self, url: str, body: bytes, secret: str) -> tuple[int, bytes]:
        """POST a signed webhook body; (status, response body), status 0 when the endpoint is unreachable."""
        signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        request = urllib.request.Request(  # noqa: S310 - subscribe() only accepts http(s) URLs
            url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": "TogglSandboxWebhooks/1.0",
                "X-Webhook-Signature-256": f"sha256={signature}",
            },
        )
        try:
            with self._opener.open(request, timeout=5) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            try:
                return exc.code, exc.read()
            finally:
                exc.close()
        except (urllib.error.URLError, OSError):
            return 0, b""

    def _resolve_rate(self, user_id: Any, project_id: Any) -> tuple[int | None, str]:
        workspace_currency = self._workspace["default_currency"]
        project = self._projects.get(project_id) if _is_int(project_id) else None
        if project is not None:
            currency = project.get("currency") or workspace_currency
            member = self._project_users.get((project_id, user_id)) if _is_int(user_id) else None
            if member is not None and member.get("rate") is not None:
                return to_minor_units(member["rate"], currency), currency
            if project.get("rate") is not None:
                return to_minor_units(project["rate"], currency), currency
        member = self._workspace_users.get(user_id) if _is_int(user_id) else None
        if member is not None and member.get("rate") is not None:
            return to_minor_units(member["rate"], workspace_currency), workspace_currency
        return to_minor_units(self._workspace.get("default_hourly_rate"), workspace_currency), workspace_currency

    # ------------------------------------------------------------------ internals: reports

    def _report_rows(self, signature: tuple[Any, ...]) -> _ReportCache:
        """The grouped rows for a filter signature, cached per (signature, state version)."""
        cached = self._report_cache.get(signature)
        if cached is not None and cached.version == self._version:
            self._report_cache.move_to_end(signature)
            return cached
        gc_was_enabled = gc.isenabled()
        gc.disable()  # hundreds of thousands of fresh lists and tuples: spare the collector the rescans
        try:
            entry = self._build_report(signature)
        finally:
            if gc_was_enabled:
                gc.enable()
        self._report_cache[signature] = entry
        while len(self._report_cache) > _CACHE_SIGNATURES:
            self._report_cache.popitem(last=False)
        return entry

    def _build_report(self, signature: tuple[Any, ...]) -> _ReportCache:
        start_day, end_day, user_ids, project_ids, billable = signature
        lo_ts, hi_ts = _day_start(start_day), _day_start(end_day) + 86400
        rows, order = self._rows, self._order
        lo = bisect.bisect_left(order, (lo_ts,), key=self._sort_key)
        hi = bisect.bisect_left(order, (hi_ts,), key=self._sort_key)
        groups: dict[tuple[Any, ...], list[Any]] = {}
        for key in order[lo:hi]:
            row = rows[key]
            if row.deleted_at is not None or row.stop is None:
                continue
            if user_ids is not None and row.user_id not in user_ids:
                continue
            if project_ids is not None and row.project_id not in project_ids:
                continue
            if billable is not None and row.billable is not billable:
                continue
            group_key = (row.user_id, row.project_id, row.task_id, row.billable, row.description, row.tag_ids)
            members = groups.get(group_key)
            if members is None:
                groups[group_key] = [row]
            else:
                members.append(row)
        render = self._header_renderer()
        report = [
            _ReportRow(members[0].start, members[0].id, render(*group_key), members)
            for group_key, members in groups.items()
        ]
        raw_rows = self._raw_report_rows(lo_ts, hi_ts, user_ids, project_ids, billable)
        if raw_rows:
            report = sorted(report + raw_rows, key=lambda r: (r.start, r.first_id if _is_int(r.first_id) else 0))
        return _ReportCache(self._version, report)

    def _header_renderer(self) -> Callable[..., bytes]:
        """A row-header renderer with per-build caches (users, rates and descriptions repeat a lot)."""
        names: dict[Any, str] = {}
        rates: dict[Any, str] = {}
        texts: dict[Any, str] = {}

        def cached(cache: dict[Any, str], key: Any, make: Callable[[], str]) -> str:
            try:
                text = cache.get(key)
            except TypeError:  # an unhashable value from a raw entry
                return make()
            if text is None:
                text = cache[key] = make()
            return text

        def username(user_id: Any) -> str:
            user = self._users.get(user_id) if _is_int(user_id) else None
            return json.dumps(user["fullname"] if user else None, ensure_ascii=False)

        def rate(user_id: Any, project_id: Any) -> str:
            cents, currency = self._resolve_rate(user_id, project_id)
            return f'"hourly_rate_in_cents":{_scalar(cents)},"currency":{_scalar(currency)}'

        def render(user_id: Any, project_id: Any, task_id: Any, billable: Any, description: Any, tag_ids: Any) -> bytes:
            name = cached(names, user_id, lambda: username(user_id))
            rate_text = cached(rates, (user_id, project_id), lambda: rate(user_id, project_id))
            text = cached(texts, description, lambda: json.dumps(description, ensure_ascii=False))
            tags = "[" + ",".join(map(str, tag_ids)) + "]" if isinstance(tag_ids, tuple) else _scalar(tag_ids)
            return (
                f'{{"user_id":{_scalar(user_id)},"username":{name},"project_id":{_scalar(project_id)},'
                f'"task_id":{_scalar(task_id)},"billable":{_scalar(billable)},"description":{text},'
                f'"tag_ids":{tags},{rate_text},"row_number":'
            ).encode()

        return render

    def _raw_report_rows(
        self, lo_ts: int, hi_ts: int, user_ids: Any, project_ids: Any, billable: Any
    ) -> list[_ReportRow]:
        """Raw entries as one row each; a missing or unusable field never excludes them."""
        render = self._header_renderer()
        out = []
        for raw in self._raw.values():
            if raw.get("server_deleted_at"):
                continue
            start = parse_timestamp(raw.get("start"))
            if start is not None and not lo_ts <= start < hi_ts:
                continue
            user_id, project_id, raw_billable = raw.get("user_id"), raw.get("project_id"), raw.get("billable")
            if user_ids is not None and _is_int(user_id) and user_id not in user_ids:
                continue
            usable_project = _is_int(project_id) or project_id is None
            if project_ids is not None and usable_project and project_id not in project_ids:
                continue
            if billable is not None and isinstance(raw_billable, bool) and raw_billable is not billable:
                continue
            header = render(
                user_id, project_id, raw.get("task_id"), raw_billable, raw.get("description"), raw.get("tag_ids")
            )
            frag = dumps(
                {
                    "id": raw.get("id"),
                    "seconds": raw.get("duration"),
                    "start": raw.get("start"),
                    "stop": raw.get("stop"),
                    "at": raw.get("at"),
                }
            )
            out.append(_ReportRow(start if start is not None else -1, raw.get("id"), header, [_Frag(frag)]))
        return out

    def _search(self, body: bytes) -> Response:
        """``POST /reports/api/v3/workspace/{wid}/search/time_entries``: one page of grouped rows."""
        try:
            args = json.loads(body) if body.strip() else {}
        except ValueError:
            raise _BadRequest("request body is not valid JSON") from None
        if not isinstance(args, dict):
            raise _BadRequest("request body must be a JSON object")
        days = []
        for name in ("start_date", "end_date"):
            value = args.get(name)
            try:
                days.append(date.fromisoformat(value) if isinstance(value, str) and len(value) == 10 else None)
            except ValueError:
                days.append(None)
            if days[-1] is None:
                raise _BadRequest(f"{name} is required, as YYYY-MM-DD")
        start_day, end_day = days
        if end_day < start_day:
            raise _BadRequest("end_date must not be before start_date")
        if (end_day - start_day).days + 1 > MAX_REPORT_DAYS:
            raise _BadRequest(f"the date range must not exceed {MAX_REPORT_DAYS} days")
        page_size = args.get("page_size", DEFAULT_REPORT_PAGE)
        if not _is_int(page_size) or page_size < 1:
            raise _BadRequest("page_size must be a positive integer")
        page_size = min(page_size, MAX_REPORT_PAGE)
        billable = args.get("billable")
        if billable is not None and not isinstance(billable, bool):
            raise _BadRequest("billable must be a boolean")
        signature = (
            start_day,
            end_day,
            _int_list("user_ids", args.get("user_ids")),
            _int_list("project_ids", args.get("project_ids"), allow_null=True),
            billable,
        )
        first_id = _optional_int("first_id", args.get("first_id"))
        first_row = _optional_int("first_row_number", args.get("first_row_number"))
        with self._lock:
            cache = self._report_rows(signature)
            rows = cache.rows
            index = 0
            if first_row is not None and 1 <= first_row <= len(rows) and rows[first_row - 1].first_id == first_id:
                index = first_row - 1
            elif first_id is not None:
                if cache.first_ids is None:
                    cache.first_ids = {}
                    for i, row in enumerate(rows):
                        cache.first_ids.setdefault(row.first_id, i)
                found = cache.first_ids.get(first_id)
                index = found if found is not None else max(0, (first_row or 1) - 1)
            elif first_row is not None:
                index = max(0, first_row - 1)
            page = rows[index : index + page_size]
            parts = [
                b"".join((row.header, b"%d" % n, b',"time_entries":[', b",".join([m.frag for m in row.members]), b"]}"))
                for n, row in enumerate(page, index + 1)
            ]
            headers: list[tuple[str, str]] = []
            end = index + len(page)
            if end < len(rows):
                next_id = rows[end].first_id
                headers = [("X-Next-ID", str(next_id if _is_int(next_id) else 0)), ("X-Next-Row-Number", str(end + 1))]
        return 200, b"[" + b",".join(parts) + b"]", headers

    # ------------------------------------------------------------------ internals: API v9

    def _me_entries(self, params: dict[str, str]) -> Response:
        """``GET /api/v9/me/time_entries``: the token owner's entries, newest start first."""
        now = self.now().timestamp()
        since: int | None = None
        lo: int | None = None
        hi: int | None = None
        if "since" in params:
            try:
                since = int(params["since"])
            except ValueError:
                raise _BadRequest("since: expected a UNIX timestamp in seconds") from None
            if since < now - SINCE_MAX_AGE:
                raise _BadRequest("since: must not be older than 3 months")
        else:
            if "start_date" in params:
                lo = _parse_day_or_time("start_date", params["start_date"])
            for name in ("end_date", "before"):
                if name in params:
                    bound = _parse_day_or_time(name, params[name])
                    hi = bound if hi is None else min(hi, bound)
        with self._lock:
            rows = self._rows
            if since is not None:
                selected = [rows[k] for k in self._owner_keys if rows[k].at >= since]
            else:
                selected = [
                    row
                    for row in (rows[k] for k in self._owner_keys)
                    if row.deleted_at is None and (lo is None or row.start >= lo) and (hi is None or row.start < hi)
                ]
            raws = [raw for raw in self._raw.values() if self._raw_matches(raw, since, lo, hi)]
        selected.sort(key=lambda row: (row.start, row.id), reverse=True)
        raws.sort(key=lambda raw: parse_timestamp(raw.get("start")) or 2**62, reverse=True)
        parts = [dumps(raw) for raw in raws] + [render_entry(row) for row in selected]
        return 200, b"[" + b",".join(parts) + b"]", []

    def _raw_matches(self, raw: dict[str, Any], since: int | None, lo: int | None, hi: int | None) -> bool:
        user_id = raw.get("user_id")
        if _is_int(user_id) and user_id != self.owner_id:
            return False
        if since is not None:
            at = parse_timestamp(raw.get("at"))
            return at is None or at >= since
        if raw.get("server_deleted_at"):
            return False
        start = parse_timestamp(raw.get("start"))
        return start is None or ((lo is None or start >= lo) and (hi is None or start < hi))

    def _me(self) -> dict[str, Any]:
        user = self._users[self.owner_id]
        return {
            "id": user["id"],
            "api_token": self.token,
            "email": user["email"],
            "fullname": user["fullname"],
            "default_workspace_id": self.workspace_id,
            "timezone": "UTC",
            "beginning_of_week": 1,
            "at": user["at"],
        }

    def _quota_list(self) -> list[dict[str, Any]]:
        status = self._quota_peek("org", self.now().timestamp())
        return [
            {
                "organization_id": self.organization_id,
                "remaining": status["remaining"],
                "resets_in_secs": status["resets_in_secs"],
                "total": status["total"],
            }
        ]

    def _workspace_api(self, rest: list[str], params: dict[str, str]) -> Response:
        match rest:
            case []:
                return _json(200, self._workspace)
            case ["clients"]:
                return _json(200, sorted(self._clients.values(), key=lambda o: o["id"]))
            case ["projects"]:
                return self._projects_page(params)
            case ["tasks"]:
                return _json(200, sorted(self._tasks.values(), key=lambda o: o["id"]))
            case ["tags"]:
                return _json(200, sorted(self._tags.values(), key=lambda o: o["id"]))
            case ["users"]:
                return _json(200, sorted(self._users.values(), key=lambda o: o["id"]))
            case ["workspace_users"]:
                return _json(200, sorted(self._workspace_users.values(), key=lambda o: o["id"]))
            case ["project_users"]:
                return _json(200, sorted(self._project_users.values(), key=lambda o: o["id"]))
            case ["projects", ident] if ident.isdigit() and int(ident) in self._projects:
                return _json(200, self._projects[int(ident)])
            case ["time_entries", ident] if ident.isdigit() and int(ident) in self._rows:
                return 200, render_entry(self._rows[int(ident)]), []
        return _json(404, "Not Found")

    def _projects_page(self, params: dict[str, str]) -> Response:
        try:
            page = int(params.get("page", "1"))
            per_page = int(params.get("per_page", str(MAX_PROJECTS_PAGE)))
        except ValueError:
            raise _BadRequest("page and per_page must be integers") from None
        if page < 1 or per_page < 1:
            raise _BadRequest("page and per_page must be positive")
        per_page = min(per_page, MAX_PROJECTS_PAGE)
        projects = sorted(self._projects.values(), key=lambda o: o["id"])
        return _json(200, projects[(page - 1) * per_page : page * per_page])

    # ------------------------------------------------------------------ internals: HTTP

    def _record(self, method: str, target: str, status: int) -> None:
        self._traffic.record(method, target, status)

    def _take_fault(self, path: str) -> Fault | None:
        return self._fault_plan.take(path)

    def _quota_peek(self, name: str, now: float) -> dict[str, Any]:
        limit = self._quota if name == "org" else self._me_quota
        if limit is None:
            return {"remaining": None, "resets_in_secs": None, "total": None}
        started, used = self._windows[name]
        if started is None or now >= started + QUOTA_WINDOW:
            return {"remaining": limit, "resets_in_secs": QUOTA_WINDOW, "total": limit}
        resets = max(1, math.ceil(started + QUOTA_WINDOW - now))
        return {"remaining": max(0, limit - used), "resets_in_secs": resets, "total": limit}

    def _quota_headers(self, name: str, now: float) -> list[tuple[str, str]]:
        status = self._quota_peek(name, now)
        if status["total"] is None:
            return []
        return [
            ("X-Toggl-Quota-Remaining", str(status["remaining"])),
            ("X-Toggl-Quota-Resets-In", str(status["resets_in_secs"])),
        ]

    def _quota_take(self, name: str, now: float) -> bool:
        """Count one request in the quota window; False when exhausted (nothing is counted then)."""
        limit = self._quota if name == "org" else self._me_quota
        if limit is None:
            return True
        window = self._windows[name]
        if window[0] is None or now >= window[0] + QUOTA_WINDOW:
            window[0], window[1] = now, 0
        if window[1] >= limit:
            return False
        window[1] += 1
        return True

    def _short_term_take(self, now: float) -> int | None:
        """Token bucket; returns Retry-After seconds when empty (a refused request costs nothing)."""
        if self._short_term is None:
            return None
        burst, per_seconds = self._short_term
        tokens, last = self._bucket if self._bucket is not None else (float(burst), now)
        tokens = min(float(burst), tokens + max(0.0, now - last) / per_seconds)
        if tokens >= 1.0:
            self._bucket = (tokens - 1.0, now)
            return None
        self._bucket = (tokens, now)
        return max(1, math.ceil((1.0 - tokens) * per_seconds))

    def _authorized(self, headers: Any) -> bool:
        value = (headers.get("Authorization") or "").strip()
        scheme, _, encoded = value.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        return hmac.compare_digest(decoded, f"{self.token}:api_token")

    def _serve(self, method: str, target: str, headers: Any, body: bytes, host: str = "") -> Response | None:
        """Entry point of the HTTP handler; ``None`` means drop the connection without answering."""
        split = urlsplit(target)
        path = split.path
        if path.startswith("/_sandbox/"):
            return self._control(method, path, body)
        if path.startswith(VALIDATE_PREFIX):
            response = self._validate(method, path)
            self._record(method, target, response[0])
            return response
        bucket = "me" if path == f"{API_PREFIX}/me" or path.startswith(f"{API_PREFIX}/me/") else "org"
        fault = self._take_fault(path)
        kind = fault.kind if fault else None
        if kind == "drop":
            self._record(method, target, 0)
            return None
        if fault is not None and kind == "slow":
            time.sleep(fault.delay)
        now = self.now().timestamp()
        with self._lock:
            quota_headers = self._quota_headers(bucket, now)
        if kind == "5xx":
            response = _text(503, "Service Unavailable", quota_headers)
        elif kind == "429":
            response = _text(429, "Too Many Requests", [("Retry-After", "1"), *quota_headers])
        elif kind == "402":
            with self._lock:
                status = self._quota_peek(bucket, now)
            resets = status["resets_in_secs"] or QUOTA_WINDOW
            response = _text(
                402,
                f"You have hit your hourly limit for API calls. Your quota will reset in {resets} seconds.",
                [("X-Toggl-Quota-Remaining", "0"), ("X-Toggl-Quota-Resets-In", str(resets))],
            )
        else:
            response = self._api(method, path, split.query, headers, body, bucket, now)
        if kind == "malformed":
            response = (200, response[1][: max(1, len(response[1]) // 2)], response[2])
        self._record(method, target, response[0])
        return response

    def _api(self, method: str, path: str, query: str, headers: Any, body: bytes, bucket: str, now: float) -> Response:
        if not (path.startswith(f"{API_PREFIX}/") or path.startswith(f"{REPORTS_PREFIX}/")):
            return _text(404, "404 page not found")
        if not self._authorized(headers):
            return _text(403, _FORBIDDEN)
        with self._lock:
            retry_after = self._short_term_take(now)
            if retry_after is not None:
                return _text(
                    429,
                    "Too Many Requests: slow down to about one request per second.",
                    [("Retry-After", str(retry_after)), *self._quota_headers(bucket, now)],
                )
            if not self._quota_take(bucket, now):
                status = self._quota_peek(bucket, now)
                return _text(
                    402,
                    "You have hit your hourly limit for API calls. "
                    f"Your quota will reset in {status['resets_in_secs']} seconds.",
                    self._quota_headers(bucket, now),
                )
            quota_headers = self._quota_headers(bucket, now)
        try:
            status, payload, extra = self._route(method, path, query, body)
        except _BadRequest as exc:
            status, payload, extra = exc.response
        return status, payload, [*extra, *quota_headers]

    def _route(self, method: str, path: str, query: str, body: bytes) -> Response:
        params = dict(parse_qsl(query, keep_blank_values=True))
        if path.startswith(f"{REPORTS_PREFIX}/"):
            match [p for p in path[len(REPORTS_PREFIX) :].split("/") if p]:
                case ["workspace", wid, "search", "time_entries"]:
                    if method != "POST":
                        return _json(405, "Method Not Allowed")
                    if wid != str(self.workspace_id):
                        return _json(404, "workspace not found")
                    return self._search(body)
            return _json(404, "Not Found")
        if method != "GET":
            return _json(405, "Method Not Allowed")
        parts = [p for p in path[len(API_PREFIX) :].split("/") if p]
        with self._lock:
            match parts:
                case ["me"]:
                    return _json(200, self._me())
                case ["me", "quota"]:
                    return _json(200, self._quota_list())
                case ["me", "workspaces"]:
                    return _json(200, [self._workspace])
                case ["me", "time_entries"]:
                    pass
                case ["me", "time_entries", ident] if ident.isdigit() and int(ident) in self._owner_keys:
                    return 200, render_entry(self._rows[int(ident)]), []
                case ["workspaces", wid, *rest] if wid == str(self.workspace_id):
                    return self._workspace_api(rest, params)
                case _:
                    return _json(404, "Not Found")
        return self._me_entries(params)

    def _validate(self, method: str, path: str) -> Response:
        """``GET validation_code_url``: validates a webhook subscription (no auth, like Toggl's link)."""
        parts = path[len(VALIDATE_PREFIX) :].strip("/").split("/")
        with self._lock:
            sub = self._subscriptions.get(int(parts[0])) if len(parts) == 2 and parts[0].isdigit() else None
            if method != "GET" or sub is None or not hmac.compare_digest(sub.validation_code, parts[1]):
                return _json(404, "Not Found")
            sub.validated = True
        return _json(200, {"status": "ok", "subscription_id": sub.id})

    def _control(self, method: str, path: str, body: bytes) -> Response:
        """``/_sandbox/*``: the Python API over HTTP, for harnesses in another process (no auth)."""
        try:
            args: Any = json.loads(body) if body.strip() else {}
        except ValueError:
            return _json(400, {"message": "body is not JSON"})
        parts = [p for p in path.split("/")[2:] if p]
        try:
            match method, parts:
                case "GET", ["stats"]:
                    stats = self.stats()
                    stats["status_counts"] = {str(k): v for k, v in stats["status_counts"].items()}
                    return _json(200, stats)
                case "GET", ["health"]:
                    with self._lock:
                        live = sum(1 for row in self._rows.values() if row.deleted_at is None)
                    return _json(200, {"ok": True, "entries": live, "now": format_timestamp(self.now())})
                case "POST", ["reset_stats"]:
                    self.reset_stats()
                    return _json(200, {"ok": True})
                case "POST", ["faults"]:
                    self.inject_fault(**args)
                    return _json(201, {"ok": True})
                case "DELETE", ["faults"]:
                    self.clear_faults()
                    return _json(200, {"ok": True})
                case "POST", ["edit_random"]:
                    ids = self.edit_random(int(args["count"]), seed=int(args.get("seed", 0)))
                    return _json(200, {"ids": ids})
                case "POST", ["quota"]:
                    if "quota" in args:
                        self.set_quota(args["quota"])
                    if "me_quota" in args:
                        self.set_me_quota(args["me_quota"])
                    return _json(200, self.quota_status())
                case "POST", ["short_term"]:
                    if args.get("off"):
                        self.set_short_term(None)
                    else:
                        self.set_short_term((int(args["burst"]), float(args["per_seconds"])))
                    return _json(200, {"ok": True})
                case "POST", ["advance"]:
                    self.advance(float(args["seconds"]))
                    return _json(200, {"now": format_timestamp(self.now())})
                case "POST", ["time_entries"]:
                    return _json(201, self.create_entry(**args))
                case "PATCH", ["time_entries", ident]:
                    return _json(200, self.update_entry(int(ident), **args))
                case "DELETE", ["time_entries", ident]:
                    self.delete_entry(int(ident))
                    return _json(200, {"deleted": int(ident)})
                case "POST", ["raw_entries"]:
                    return _json(201, {"key": self.put_raw_entry(args)})
                case "POST", ["projects", ident, "rate"]:
                    project = self.set_project_rate(int(ident), args.get("rate"), currency=args.get("currency"))
                    return _json(200, project)
                case "POST", ["webhooks", "subscriptions"]:
                    sub_id = self.subscribe(args["url"], args["secret"], events=args.get("events", WEBHOOK_ACTIONS))
                    return _json(201, {"id": sub_id})
                case "GET", ["webhooks", "subscriptions"]:
                    return _json(200, self.subscriptions())
                case "POST", ["webhooks", "deliver"]:
                    return _json(200, [list(result) for result in self.deliver()])
                case "POST", ["webhooks", "faults"]:
                    self.webhook_faults(**args)
                    return _json(200, {"ok": True})
                case "GET", ["webhooks", "events"]:
                    return _json(200, self.events_sent())
        except KeyError as exc:
            return _json(404, {"message": f"no such item {exc}"})
        except (TypeError, ValueError) as exc:
            return _json(400, {"message": str(exc)})
        return _json(404, {"message": "unknown control endpoint"})
