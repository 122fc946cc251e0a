"""Deterministic generator of a realistic Toggl Track workspace: clients, projects, tasks, tags, users, rates
and time entries.

Time entries are compact :class:`EntryRow` tuples (epoch-second integers, shared strings and tuples) plus the
*pre-rendered* JSON bytes of the entry as it appears inside a Reports API v3 row (``frag``). That keeps a
million entries well under the memory budget and lets the server build a report page by joining bytes.
The full API v9 object is rendered on demand by :func:`render_entry` (only the token owner's entries and
webhook payloads ever need it).
"""

from __future__ import annotations

import gc
import json
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, NamedTuple

__all__ = [
    "MINOR_UNITS",
    "Dataset",
    "EntryRow",
    "dumps",
    "entry_object",
    "format_timestamp",
    "generate_dataset",
    "parse_timestamp",
    "render_entry",
    "render_frag",
    "to_minor_units",
]

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
MINOR_UNITS = {"JPY": 0, "USD": 2, "EUR": 2}
WORKSPACE_CURRENCY = "USD"
WORKSPACE_RATE = 100.0

# Project currencies, cycled; EUR and JPY projects always carry their own rate (see _project_rate).
_CURRENCY_CYCLE = ("USD", "JPY", "EUR", "USD", "USD", "EUR", "USD", "JPY", "USD", "USD", "EUR", "USD")
_RATES: dict[str, tuple[float, ...]] = {
    "USD": (95.0, 120.0, 137.5, 150.0, 175.0, 200.0),
    "EUR": (90.0, 110.0, 135.0, 160.0, 210.5),
    "JPY": (12000.0, 15000.0, 18000.0, 22500.0),
}
_MEMBER_RATES = (80.0, 110.0, 125.0, 142.5, 160.0)
_PROJECT_NAMES = (
    "Website Redesign", "Mobile App", "Brand Refresh", "Data Migration", "Support Retainer", "SEO Audit",
    "Cloud Migration", "Analytics Dashboard", "ERP Rollout", "Marketing Campaign", "Security Review",
    "API Integration", "Quarterly Retainer", "Discovery Phase",
)  # fmt: skip
_INTERNAL_PROJECTS = ("Internal", "Admin & Overhead", "Training")
_CLIENT_A = (
    "Northwind", "Contoso", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Acme", "Hooli", "Vandelay",
    "Zürich", "Østerbro", "São Paulo", "Kraków", "Nordström", "O'Neil", "Blue Sky", "Pied Piper", "Tyrell",
)  # fmt: skip
_CLIENT_B = ("Traders", "Labs", "Consulting", "Media", "Logistics", "Foods", "Partners", "Systems", "Studios")
_CLIENT_SUFFIX = ("Inc.", "LLC", "Ltd", "GmbH", "S.A.", "K.K.", "& Co.", "")
_TASK_NAMES = ("Design", "Development", "Project Management", "Meetings", "QA & Testing", "Documentation")
_TAG_NAMES = ("urgent", "onsite", "remote", "overtime", "review", "billable-extra", "R&D", "café", "follow-up")
_FIRST = (
    "Ana", "Ben", "Chloé", "David", "Emma", "François", "Grace", "Hiro", "Inès", "Jonas", "Kateřina", "Liam",
    "Maya", "Noah", "Olivia", "Pedro", "Quinn", "Rosa", "Søren", "Tariq", "Uma", "Victor", "Wei", "Zoë",
)  # fmt: skip
_LAST = (
    "Anderson", "Brown", "Castillo", "Dubois", "Eriksen", "Fischer", "García", "Hughes", "Jensen", "Kowalski",
    "López", "Müller", "Nakamura", "O'Brien", "Patel", "Rossi", "Schmidt", "Tanaka", "Wójcik", "Zhang",
)  # fmt: skip
_ASCII = str.maketrans("éèçãøóüšłźřöëáí", "eecaoousizroeai")
# Common descriptions repeat a lot (so report rows group several entries); a few break naive CSV/JSON handling.
_DESCRIPTIONS = (
    "Sprint planning", "Code review", "Bug fixes", "Client call", "Implementation", "Documentation",
    "Deployment", "Design review", "Weekly sync", "Refactoring", "Investigation", "Testing",
    'Call with "ACME", re: budget', "Line one\nLine two", "Crème brûlée café — naïve résumé ✓",
    "日本語のメモ / 한국어 메모", "Quote ' and \" both, plus \\ backslash", "Semicolon; pipe | and comma,",
    "=SUM(A1:A9)", "  padded  ",
)  # fmt: skip
_TICKET_WORDS = ("Fix login", "Add export", "Tune query", "Update copy", "Migrate table", "Review PR")


class EntryRow(NamedTuple):
    """One stored time entry. Times are epoch seconds; ``stop`` is ``None`` while running."""

    id: int
    workspace_id: int
    project_id: int | None
    task_id: int | None
    user_id: int
    billable: bool
    start: int
    stop: int | None
    duration: int
    description: str | None
    tags: tuple[str, ...]
    tag_ids: tuple[int, ...]
    at: int
    deleted_at: int | None
    frag: bytes  # the Reports API v3 ``time_entries`` element, pre-rendered


@dataclass
class Dataset:
    """A generated workspace. ``entries`` are in ascending (start, id) order; the sandbox relies on it."""

    seed: int
    anchor: date
    days: int
    organization_id: int
    owner_id: int
    workspace: dict[str, Any]
    clients: list[dict[str, Any]]
    projects: list[dict[str, Any]]
    tasks: list[dict[str, Any]]
    tags: list[dict[str, Any]]
    users: list[dict[str, Any]]
    workspace_users: list[dict[str, Any]]
    project_users: list[dict[str, Any]]
    entries: list[EntryRow]

    def to_bytes(self) -> bytes:
        """Canonical serialisation, so determinism can be checked byte for byte."""
        head = dumps(
            {
                "seed": self.seed,
                "anchor": self.anchor.isoformat(),
                "days": self.days,
                "organization_id": self.organization_id,
                "owner_id": self.owner_id,
                "workspace": self.workspace,
                "clients": self.clients,
                "projects": self.projects,
                "tasks": self.tasks,
                "tags": self.tags,
                "users": self.users,
                "workspace_users": self.workspace_users,
                "project_users": self.project_users,
            }
        )
        return head + b"\n" + b"\n".join(render_entry(row) for row in self.entries)


def dumps(obj: Any) -> bytes:
    """The one JSON encoding the sandbox serves (compact, UTF-8, non-ASCII kept as is)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def _dumps_str(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


class _Stamper:
    """Fast epoch-seconds -> ``YYYY-MM-DDTHH:MM:SS+00:00`` (caches the date part per day)."""

    def __init__(self) -> None:
        self._days: dict[int, str] = {}

    def __call__(self, secs: int) -> str:
        day, rem = divmod(secs, 86400)
        prefix = self._days.get(day)
        if prefix is None:
            if len(self._days) > 4096:
                self._days.clear()
            prefix = self._days[day] = date.fromordinal(_EPOCH_ORDINAL + day).isoformat()
        hour, rem = divmod(rem, 3600)
        minute, second = divmod(rem, 60)
        return f"{prefix}T{hour:02d}:{minute:02d}:{second:02d}+00:00"


_stamp = _Stamper()


def format_timestamp(moment: datetime | int) -> str:
    """Toggl's timestamp format, ``YYYY-MM-DDTHH:MM:SS+00:00`` in UTC (datetime or epoch seconds)."""
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        moment = int(moment.timestamp())
    return _stamp(moment)


def parse_timestamp(value: Any) -> int | None:
    """ISO 8601 (naive means UTC) or epoch seconds -> epoch seconds; ``None`` if unusable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, datetime):
        return int((value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp())
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp())


def to_minor_units(rate: float | None, currency: str) -> int | None:
    """Major-unit rate -> integer minor units of ``currency`` (JPY has none: 15000.0 -> 15000)."""
    if rate is None:
        return None
    exponent = MINOR_UNITS.get(currency, 2)
    return int(Decimal(repr(float(rate))).scaleb(exponent).to_integral_value(ROUND_HALF_UP))


def render_frag(row_id: Any, duration: Any, start: int | None, stop: int | None, at: int | None) -> bytes:
    """The ``{id, seconds, start, stop, at}`` element of a report row."""
    start_s = f'"{_stamp(start)}"' if start is not None else "null"
    stop_s = f'"{_stamp(stop)}"' if stop is not None else "null"
    at_s = f'"{_stamp(at)}"' if at is not None else "null"
    return f'{{"id":{row_id},"seconds":{duration},"start":{start_s},"stop":{stop_s},"at":{at_s}}}'.encode()


def _ids_json(ids: tuple[int, ...]) -> str:
    return "[" + ",".join(map(str, ids)) + "]"


def render_entry(row: EntryRow) -> bytes:
    """The API v9 time entry object as served (byte-identical to :func:`dumps` of :func:`entry_object`)."""
    pid = "null" if row.project_id is None else row.project_id
    tid = "null" if row.task_id is None else row.task_id
    stop = "null" if row.stop is None else f'"{_stamp(row.stop)}"'
    deleted = "null" if row.deleted_at is None else f'"{_stamp(row.deleted_at)}"'
    return (
        f'{{"id":{row.id},"workspace_id":{row.workspace_id},"project_id":{pid},"task_id":{tid},'
        f'"user_id":{row.user_id},"billable":{"true" if row.billable else "false"},'
        f'"start":"{_stamp(row.start)}","stop":{stop},"duration":{row.duration},'
        f'"description":{_dumps_str(row.description)},"tags":{_dumps_str(list(row.tags))},'
        f'"tag_ids":{_ids_json(row.tag_ids)},"at":"{_stamp(row.at)}","server_deleted_at":{deleted}}}'
    ).encode()


def entry_object(row: EntryRow) -> dict[str, Any]:
    """The API v9 time entry object as a dict (what :func:`render_entry` serialises)."""
    return {
        "id": row.id,
        "workspace_id": row.workspace_id,
        "project_id": row.project_id,
        "task_id": row.task_id,
        "user_id": row.user_id,
        "billable": row.billable,
        "start": _stamp(row.start),
        "stop": None if row.stop is None else _stamp(row.stop),
        "duration": row.duration,
        "description": row.description,
        "tags": list(row.tags),
        "tag_ids": list(row.tag_ids),
        "at": _stamp(row.at),
        "server_deleted_at": None if row.deleted_at is None else _stamp(row.deleted_at),
    }


def generate_dataset(
    n_entries: int,
    *,
    seed: int = 7,
    anchor: date | None = None,
    days: int = 365,
    n_users: int | None = None,
) -> Dataset:
    """Generate a workspace with ``n_entries`` time entries starting within the ``days`` ending at ``anchor``.

    Same arguments give byte-identical output (``anchor`` defaults to today, so pin it for determinism).
    """
    if n_entries < 0:
        raise ValueError("n_entries must be >= 0")
    if days < 1:
        raise ValueError("days must be >= 1")
    if n_users is not None and n_users < 1:
        raise ValueError("n_users must be >= 1")
    anchor = anchor or datetime.now(UTC).date()
    gc_was_enabled = gc.isenabled()
    gc.disable()  # millions of small tuples: the cyclic GC would only rescan them over and over
    try:
        return _generate(n_entries, seed=seed, anchor=anchor, days=days, n_users=n_users)
    finally:
        if gc_was_enabled:
            gc.enable()


def _project_rate(rng: random.Random, currency: str) -> float | None:
    """Foreign-currency projects always carry a rate, so no rate ever falls back across currencies."""
    if currency != WORKSPACE_CURRENCY or rng.random() < 0.5:
        return rng.choice(_RATES[currency])
    return None


def _generate(n_entries: int, *, seed: int, anchor: date, days: int, n_users: int | None) -> Dataset:
    rng = random.Random(seed)
    rand = rng.random
    choice = rng.choice
    first_day = anchor - timedelta(days=days - 1)
    window_start = (first_day.toordinal() - _EPOCH_ORDINAL) * 86400
    window_end = (anchor.toordinal() - _EPOCH_ORDINAL) * 86400 + 86399

    def before_window(min_days: int, max_days: int) -> str:
        return _stamp(window_start - rng.randrange(min_days, max_days) * 86400 + rng.randrange(86400))

    organization_id = 8_200_000 + rng.randrange(1, 1000)
    wid = 7_400_000 + rng.randrange(1, 1000)
    workspace = {
        "id": wid,
        "organization_id": organization_id,
        "name": "Closeout Sandbox Workspace",
        "default_currency": WORKSPACE_CURRENCY,
        "default_hourly_rate": WORKSPACE_RATE,
        "rounding": 1,
        "rounding_minutes": 0,
        "at": before_window(400, 900),
    }

    users_count = n_users if n_users is not None else max(3, min(40, 3 + n_entries // 25_000))
    users: list[dict[str, Any]] = []
    workspace_users: list[dict[str, Any]] = []
    for i in range(users_count):
        first, last = choice(_FIRST), choice(_LAST)
        uid = 9_100_000 + i * 13 + rng.randrange(1, 13)
        users.append(
            {
                "id": uid,
                "email": f"{first.lower().translate(_ASCII)}.{last.lower().translate(_ASCII)}{i + 1}@example.com",
                "fullname": f"{first} {last}",
                "at": before_window(30, 700),
            }
        )
        # The owner has a workspace-member rate so the precedence is observable on the owner's own entries.
        rate = choice(_MEMBER_RATES) if i == 0 or rand() < 0.5 else None
        workspace_users.append(
            {
                "id": 5_500_000 + i * 7 + rng.randrange(1, 7),
                "user_id": uid,
                "workspace_id": wid,
                "rate": rate,
                "rate_last_updated": before_window(1, 30) if rate is not None else None,
                "active": True,
                "at": before_window(1, 30),
            }
        )

    tags = [
        {"id": 1_900_000 + i * 5 + rng.randrange(1, 5), "workspace_id": wid, "name": name, "at": before_window(10, 500)}
        for i, name in enumerate(_TAG_NAMES)
    ]
    # A few tag combinations, shared by many entries (so they group): most entries carry none.
    combos: list[tuple[tuple[str, ...], tuple[int, ...]]] = [((), ())] * 6
    for _ in range(8):
        picked = sorted(rng.sample(tags, 1 + int(rand() * 2)), key=lambda t: t["id"])
        combos.append((tuple(t["name"] for t in picked), tuple(t["id"] for t in picked)))

    n_clients = max(3, min(150, n_entries // 5000))
    clients: list[dict[str, Any]] = []
    for i in range(n_clients):
        clients.append(
            {
                "id": 6_300_000 + i * 11 + rng.randrange(1, 11),
                "wid": wid,
                "name": f"{choice(_CLIENT_A)} {choice(_CLIENT_B)} {choice(_CLIENT_SUFFIX)}".strip() + f" #{i + 1}",
                "archived": rand() < 0.05,
                "at": before_window(10, 800),
            }
        )

    projects: list[dict[str, Any]] = []
    tasks: list[dict[str, Any]] = []
    project_tasks: dict[int, list[int]] = {}
    next_pid, next_tid = 20_100_000, 90_300_000
    specs: list[tuple[int | None, str]] = [(c["id"], choice(_PROJECT_NAMES)) for c in clients]
    specs += [(c["id"], choice(_PROJECT_NAMES)) for c in clients for _ in range(int(rand() * 3))]
    specs.sort(key=lambda s: s[0] or 0)
    # Every tenth client project is not billable; internal projects (no client) never are.
    specs3 = [(client_id, name, n % 10 != 4) for n, (client_id, name) in enumerate(specs)]
    specs3 += [(None, name, False) for name in _INTERNAL_PROJECTS]
    for n, (client_id, name, billable) in enumerate(specs3):
        next_pid += rng.randrange(3, 40)
        currency = WORKSPACE_CURRENCY if client_id is None else _CURRENCY_CYCLE[n % len(_CURRENCY_CYCLE)]
        rate = _project_rate(rng, currency) if client_id is not None else None
        at = before_window(5, 400)
        projects.append(
            {
                "id": next_pid,
                "workspace_id": wid,
                "client_id": client_id,
                "name": f"{name} {n + 1}",
                "billable": billable,
                "active": rand() < 0.9,
                "currency": currency,
                "rate": rate,
                "at": at,
                "rate_last_updated": at if rate is not None else None,
            }
        )
        project_tasks[next_pid] = []
        for task_name in rng.sample(_TASK_NAMES, int(rand() * 5)):
            next_tid += rng.randrange(2, 30)
            tasks.append(
                {
                    "id": next_tid,
                    "name": task_name,
                    "project_id": next_pid,
                    "workspace_id": wid,
                    "active": rand() < 0.95,
                    "at": before_window(1, 300),
                }
            )
            project_tasks[next_pid].append(next_tid)

    # Memberships: every user works on a handful of projects; some memberships carry their own rate.
    by_id = {p["id"]: p for p in projects}
    member_of: list[list[int]] = []
    project_users: list[dict[str, Any]] = []
    next_puid = 140_000_000
    billable_ids = [p["id"] for p in projects if p["billable"]]
    other_ids = [p["id"] for p in projects if not p["billable"]]
    for user in users:
        # Mostly billable client work, sometimes an internal or a non-billable project on the side.
        picked = rng.sample(billable_ids, min(len(billable_ids), 1 + int(rand() * 4)))
        if rand() < 0.6:
            picked.append(choice(other_ids))
        picked = sorted(set(picked))
        member_of.append(picked)
        for pid in picked:
            next_puid += rng.randrange(2, 30)
            currency = by_id[pid]["currency"]
            rate = choice(_RATES[currency]) if by_id[pid]["client_id"] is not None and rand() < 0.3 else None
            project_users.append(
                {
                    "id": next_puid,
                    "project_id": pid,
                    "user_id": user["id"],
                    "workspace_id": wid,
                    "manager": rand() < 0.1,
                    "rate": rate,
                    "rate_last_updated": before_window(1, 30) if rate is not None else None,
                    "at": before_window(1, 30),
                }
            )
    project_users.sort(key=lambda pu: (pu["project_id"], pu["user_id"]))

    # Per user: (project_id, project billable, task ids, ticket descriptions) choices, precomputed once.
    plans: list[list[tuple[int, bool, list[int], list[str]]]] = []
    tickets: dict[int, list[str]] = {}
    for pid in by_id:
        code = "".join(ch for ch in by_id[pid]["name"] if ch.isupper())[:3] or "PRJ"
        tickets[pid] = [f"{code}-{100 + k * 7}: {_TICKET_WORDS[k % len(_TICKET_WORDS)]}" for k in range(12)]
    for picked in member_of:  # client work is tracked more than internal time: weight it three to one
        plans.append(
            [
                (pid, by_id[pid]["billable"], project_tasks[pid], tickets[pid])
                for pid in picked
                for _ in range(1 if by_id[pid]["client_id"] is None else 3)
            ]
        )
    user_ids = [u["id"] for u in users]

    # Start times first, sorted, so ids follow start order like in Toggl.
    weekend = [(first_day + timedelta(days=d)).weekday() >= 5 for d in range(days)]
    keys = [0] * n_entries
    for i in range(n_entries):
        d = int(rand() * days)
        if weekend[d] and rand() < 0.75:
            d = int(rand() * days)
        keys[i] = d * 86400 + 25200 + int(rand() * 43200)  # starts 07:00-19:00 UTC
    keys.sort()

    entries: list[EntryRow] = [None] * n_entries  # type: ignore[list-item]
    n_desc = len(_DESCRIPTIONS)
    n_combos = len(combos)
    last_index: dict[int, int] = {}
    unique = 0
    for i in range(n_entries):
        start = window_start + keys[i]
        entry_id = 3_300_000_000 + i * 4 + int(rand() * 4)
        u = int(rand() * users_count)
        uid = user_ids[u]
        user_plans = plans[u]
        if rand() < 0.03:
            pid, task_id, billable = None, None, rand() < 0.3
            ticket_pool: list[str] | None = None
        else:
            pid, p_billable, ptasks, ticket_pool = user_plans[int(rand() * len(user_plans))]
            task_id = ptasks[int(rand() * len(ptasks))] if ptasks and rand() < 0.8 else None
            billable = p_billable and rand() < 0.93
        r = rand()
        if r < 0.6:
            description = _DESCRIPTIONS[int(rand() * n_desc)]
        elif r < 0.82 and ticket_pool is not None:
            description = ticket_pool[int(rand() * len(ticket_pool))]
        elif r < 0.9:
            description = ""
        else:
            unique += 1
            description = f"{_DESCRIPTIONS[int(rand() * 12)]} (#{unique})"
        tag_names, tag_ids = combos[int(rand() * n_combos)]
        duration = 300 + int(rand() ** 1.7 * 28500)  # 5 min .. 8 h, mostly short
        stop = start + duration
        r = rand()  # last edit: mostly right after stopping, some within 3 days, a few within 60 days
        at = stop + int(rand() * (120 if r < 0.6 else 259_200 if r < 0.9 else 5_184_000))
        if at > window_end:  # never after the window, and never piled up on its last second
            at = stop + int(rand() * (window_end - stop)) if window_end > stop else stop
        deleted_at = None
        if rand() < 0.003:  # a tombstone: deleted later, kept by the server for `since` pulls
            deleted_at = at = max(at, min(at + int(rand() * 86400), window_end))
        entries[i] = EntryRow(
            entry_id, wid, pid, task_id, uid, billable, start, stop, duration, description,
            tag_names, tag_ids, at, deleted_at, render_frag(entry_id, duration, start, stop, at),
        )  # fmt: skip
        if deleted_at is None:
            last_index[uid] = i

    # Some users' latest entry of the anchor day is still running (Toggl allows one running entry per user).
    last_day_start = window_start + (days - 1) * 86400
    for uid in user_ids:
        i = last_index.get(uid, -1)
        if i >= 0 and entries[i].start >= last_day_start and rand() < 0.5:
            row = entries[i]
            entries[i] = row._replace(
                stop=None,
                duration=-row.start,
                at=row.start,
                frag=render_frag(row.id, -row.start, row.start, None, row.start),
            )

    return Dataset(
        seed=seed,
        anchor=anchor,
        days=days,
        organization_id=organization_id,
        owner_id=user_ids[0],
        workspace=workspace,
        clients=clients,
        projects=projects,
        tasks=tasks,
        tags=tags,
        users=users,
        workspace_users=workspace_users,
        project_users=project_users,
        entries=entries,
    )
