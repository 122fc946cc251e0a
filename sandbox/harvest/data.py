"""Deterministic generator of a realistic Harvest account: clients, projects, tasks, users, time entries.

Time entries are produced as compact :class:`EntryRow` tuples that carry the *pre-rendered* JSON bytes of
the Harvest v2 time-entry object plus the handful of fields the sandbox filters and sorts on. That keeps a
million entries within a couple of gigabytes and lets the server build a page by joining bytes instead of
re-serialising objects. The fast renderer here is byte-identical to :func:`dumps` of the parsed object, so
mutated entries (re-rendered with :func:`dumps`) are indistinguishable from generated ones.
"""

from __future__ import annotations

import gc
import json
import random
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

__all__ = [
    "Dataset",
    "EntryRow",
    "dumps",
    "format_timestamp",
    "generate_dataset",
    "index_entry",
    "normalize_timestamp",
    "parse_timestamp",
    "round_up_quarter",
]

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_TS_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

# Cycled per client: mostly USD, with zero-decimal (JPY) and three-decimal (KWD) currencies early in the
# cycle so that even tiny datasets exercise the awkward minor-unit cases downstream.
_CURRENCY_CYCLE = (
    "USD", "EUR", "JPY", "GBP", "USD", "KWD", "CHF", "USD",
    "EUR", "USD", "GBP", "USD", "USD", "EUR", "USD", "USD",
)  # fmt: skip
_RATES: dict[str, tuple[float, ...]] = {
    "USD": (95.0, 120.0, 150.0, 175.0, 200.0, 250.0),
    "EUR": (90.0, 110.0, 135.0, 160.0, 210.0),
    "GBP": (85.0, 100.0, 125.0, 150.0, 190.0),
    "CHF": (120.0, 150.0, 180.0, 240.0),
    "JPY": (12000.0, 15000.0, 18000.0, 22000.0),
    "KWD": (38.75, 45.5, 45.125, 52.375),
}
_COST_RATES = (40.0, 55.0, 62.5, 75.0, 90.0)
_TASKS: tuple[tuple[str, bool, float | None], ...] = (
    ("Design", True, 150.0),
    ("Development", True, 175.0),
    ("Project Management", True, 160.0),
    ("Meetings", True, 120.0),
    ("Research", True, 140.0),
    ("QA & Testing", True, 130.0),
    ("Documentation", True, 110.0),
    ("Support", True, 100.0),
    ("Internal", False, None),
    ("Business Development", False, None),
)
_PROJECT_NAMES = (
    "Website Redesign", "Mobile App", "Brand Refresh", "Data Migration", "Support Retainer", "SEO Audit",
    "Cloud Migration", "Analytics Dashboard", "ERP Rollout", "Marketing Campaign", "Security Review",
    "API Integration", "Quarterly Retainer", "Discovery Phase",
)  # fmt: skip
_CLIENT_A = (
    "Northwind", "Contoso", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Acme", "Hooli", "Vandelay",
    "Zürich", "Østerbro", "São Paulo", "Kraków", "Nordström", "O'Neil", "Blue Sky", "Red Rock", "Pied Piper",
    "Oceanic", "Cyberdyne", "Soylent", "Tyrell", "Gringotts", "Monarch", "Sterling", "Dunder", "Prestige",
)  # fmt: skip
_CLIENT_B = (
    "Traders", "Labs", "Consulting", "Media", "Logistics", "Foods", "Partners", "Systems", "Studios",
    "Holdings", "Analytics", "Ventures", "Design", "Health", "Energy", "Robotics",
)  # fmt: skip
_CLIENT_SUFFIX = ("Inc.", "LLC", "Ltd", "GmbH", "S.A.", "AG", "K.K.", "& Co.", "B.V.", "")
_STREETS = ("Main St", "High Street", "Bahnhofstrasse", "Rue de Rivoli", "Market St", "Via Roma")
_CITIES = ("Springfield", "London", "Zürich", "Paris", "Tokyo", "Kuwait City", "Berlin", "Austin")
_FIRST = (
    "Ana", "Ben", "Chloé", "David", "Emma", "François", "Grace", "Hiro", "Inès", "Jonas", "Kateřina",
    "Liam", "Maya", "Noah", "Olivia", "Pedro", "Quinn", "Rosa", "Søren", "Tariq", "Uma", "Victor", "Wei",
    "Xenia", "Yusuf", "Zoë",
)  # fmt: skip
_LAST = (
    "Anderson", "Brown", "Castillo", "Dubois", "Eriksen", "Fischer", "García", "Hughes", "Ivanova", "Jensen",
    "Kowalski", "López", "Müller", "Nakamura", "O'Brien", "Patel", "Quintero", "Rossi", "Schmidt", "Tanaka",
    "Umarov", "Virtanen", "Wójcik", "Xu", "Yilmaz", "Zhang",
)  # fmt: skip
_NOTES = (
    "Sprint planning", "Code review", "Bug fixes", "Client call", "Implemented feature",
    "Wrote documentation", "Deployment", "Design review", "Weekly sync", "Refactoring",
    "Investigated issue", "Updated tests", "Workshop preparation", "Estimates for phase 2",
)  # fmt: skip
# Notes that break naive CSV/TSV/JSON handling downstream; two of them start with "=" (CSV injection).
_ODD_NOTES = (
    'Call with "ACME", re: budget',
    "Line one\nLine two",
    "Tab\tseparated\tvalues",
    "Crème brûlée café — naïve résumé ✓",
    "日本語のメモ / 한국어 메모",
    "Quote ' and \" both, plus \\ backslash",
    "Launch 🚀, finally",
    "Trailing newline\n",
    "  leading and trailing spaces  ",
    "Semicolon; pipe | and comma,",
    "\r\nCRLF inside\r\nnote",
    "=SUM(A1:A9)",
    '=HYPERLINK("http://example.com","click")',
    "+1 follow-up",
    "-5 adjustment",
    "@SUM(1+1)",
)
LOCKED_APPROVED = "Item Approved and Locked for this Time Period"
LOCKED_INVOICED = "Item Invoiced and Locked for this Time Period"


class EntryRow(NamedTuple):
    """One stored time entry: the fields the sandbox filters/sorts on, plus its JSON ``body``.

    Any field may be ``None`` for injected raw records that lack (or garble) it.
    """

    id: int | None
    spent_date: str | None
    updated_at: str | None
    is_billed: bool | None
    is_running: bool | None
    client_id: int | None
    project_id: int | None
    user_id: int | None
    body: bytes


@dataclass
class Dataset:
    """A generated account. ``entries`` are in ascending (spent_date, id) order; the sandbox relies on it."""

    seed: int
    anchor: date
    days: int
    clients: list[dict[str, Any]]
    projects: list[dict[str, Any]]
    tasks: list[dict[str, Any]]
    users: list[dict[str, Any]]
    user_assignments: dict[tuple[int, int], dict[str, Any]]  # (user_id, project_id) -> assignment
    task_assignments: dict[tuple[int, int], dict[str, Any]]  # (project_id, task_id) -> assignment
    entries: list[EntryRow]

    def to_bytes(self) -> bytes:
        """Canonical serialisation, so determinism can be checked byte for byte."""
        head = dumps(
            {
                "seed": self.seed,
                "anchor": self.anchor.isoformat(),
                "days": self.days,
                "clients": self.clients,
                "projects": self.projects,
                "tasks": self.tasks,
                "users": self.users,
                "user_assignments": [[u, p, a] for (u, p), a in self.user_assignments.items()],
                "task_assignments": [[p, t, a] for (p, t), a in self.task_assignments.items()],
            }
        )
        return head + b"\n" + b"\n".join(row.body for row in self.entries)


def dumps(obj: Any) -> bytes:
    """The one JSON encoding the sandbox serves (compact, UTF-8, non-ASCII kept as is)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def _dumps_str(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def format_timestamp(moment: datetime | int) -> str:
    """Harvest's timestamp format, ``YYYY-MM-DDTHH:MM:SSZ`` in UTC (datetime or epoch seconds)."""
    if isinstance(moment, int):
        moment = datetime.fromtimestamp(moment, UTC)
    elif moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime(_TS_FORMAT)


def parse_timestamp(value: Any) -> datetime | None:
    """Parse an ISO 8601 date/datetime to an aware UTC datetime (naive means UTC); ``None`` if unparseable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def normalize_timestamp(value: Any) -> str | None:
    """Canonical ``...Z`` form used for string comparisons in filters; ``None`` if unparseable."""
    if isinstance(value, str) and len(value) == 20 and value[10] == "T" and value[19] == "Z":
        try:
            datetime.strptime(value, _TS_FORMAT)
        except ValueError:
            return None
        return value
    parsed = parse_timestamp(value)
    return None if parsed is None else parsed.strftime(_TS_FORMAT)


def _valid_date(value: Any) -> str | None:
    if isinstance(value, str) and len(value) == 10:
        try:
            date.fromisoformat(value)
        except ValueError:
            return None
        return value
    return None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _nested_id(obj: dict[str, Any], key: str) -> int | None:
    nested = obj.get(key)
    return _int_or_none(nested.get("id")) if isinstance(nested, dict) else None


def index_entry(obj: Any, body: bytes | None = None) -> EntryRow:
    """Build the row for an entry object, tolerating anything (injected records may be garbage)."""
    if body is None:
        body = dumps(obj)
    if not isinstance(obj, dict):
        return EntryRow(None, None, None, None, None, None, None, None, body)
    billed, running = obj.get("is_billed"), obj.get("is_running")
    return EntryRow(
        id=_int_or_none(obj.get("id")),
        spent_date=_valid_date(obj.get("spent_date")),
        updated_at=normalize_timestamp(obj.get("updated_at")),
        is_billed=billed if isinstance(billed, bool) else None,
        is_running=running if isinstance(running, bool) else None,
        client_id=_nested_id(obj, "client"),
        project_id=_nested_id(obj, "project"),
        user_id=_nested_id(obj, "user"),
        body=body,
    )


def round_up_quarter(hours: float) -> float:
    """Account rounding as configured in the sandbox: round *up* to the next quarter hour."""
    cents = round(hours * 100)
    return -(-cents // 25) * 0.25


class _Stamper:
    """Fast epoch-seconds -> Harvest timestamp formatter (caches the date part per day)."""

    def __init__(self) -> None:
        self._days: dict[int, str] = {}

    def __call__(self, secs: int) -> str:
        day, rem = divmod(secs, 86400)
        prefix = self._days.get(day)
        if prefix is None:
            prefix = self._days[day] = date.fromordinal(_EPOCH_ORDINAL + day).isoformat()
        hour, rem = divmod(rem, 3600)
        minute, second = divmod(rem, 60)
        return f"{prefix}T{hour:02d}:{minute:02d}:{second:02d}Z"


_FOLD = str.maketrans({"ø": "o", "Ø": "O", "ł": "l", "Ł": "L", "ß": "ss", "æ": "ae", "Æ": "AE"})


def _ascii_slug(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.translate(_FOLD)).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum())


def generate_dataset(
    n_entries: int,
    *,
    seed: int = 7,
    anchor: date | None = None,
    n_clients: int | None = None,
    days: int = 365,
) -> Dataset:
    """Generate an account with ``n_entries`` time entries spread over the ``days`` ending at ``anchor``.

    Same arguments give byte-identical output (``anchor`` defaults to today, so pin it for determinism).
    """
    if n_entries < 0:
        raise ValueError("n_entries must be >= 0")
    if days < 1:
        raise ValueError("days must be >= 1")
    anchor = anchor or date.today()
    gc_was_enabled = gc.isenabled()
    gc.disable()  # millions of small tuples: the cyclic GC would only rescan them over and over
    try:
        return _generate(n_entries, seed=seed, anchor=anchor, n_clients=n_clients, days=days)
    finally:
        if gc_was_enabled:
            gc.enable()


def _generate(n_entries: int, *, seed: int, anchor: date, n_clients: int | None, days: int) -> Dataset:
    rng = random.Random(seed)
    rand = rng.random
    choice = rng.choice
    ts = _Stamper()
    first_day = anchor - timedelta(days=days - 1)
    window_start = (first_day.toordinal() - _EPOCH_ORDINAL) * 86400
    window_end = (anchor.toordinal() - _EPOCH_ORDINAL) * 86400 + 86399

    def before_window(min_days: int, max_days: int) -> tuple[str, str]:
        created = window_start - rng.randrange(min_days, max_days) * 86400 + rng.randrange(86400)
        return ts(created), ts(created + rng.randrange(0, min_days) * 86400)

    tasks: list[dict[str, Any]] = []
    for i, (name, billable, rate) in enumerate(_TASKS):
        created_at, updated_at = before_window(700, 900)
        tasks.append(
            {
                "id": 8_083_000 + i * 17 + rng.randrange(1, 17),
                "name": name,
                "billable_by_default": billable,
                "default_hourly_rate": rate,
                "is_default": billable and i < 4,
                "is_active": True,
                "created_at": created_at,
                "updated_at": updated_at,
            }
        )

    n_users = min(2000, max(2, n_entries // 2500))
    users: list[dict[str, Any]] = []
    for i in range(n_users):
        first, last = choice(_FIRST), choice(_LAST)
        created_at, updated_at = before_window(30, 700)
        users.append(
            {
                "id": 1_780_000 + i * 13 + rng.randrange(1, 13),
                "first_name": first,
                "last_name": last,
                "email": f"{_ascii_slug(first)}.{_ascii_slug(last)}{i + 1}@example.com",
                "is_active": i == 0 or rand() < 0.95,
                "default_hourly_rate": choice(_RATES["USD"]),
                "cost_rate": choice(_COST_RATES),
                "created_at": created_at,
                "updated_at": updated_at,
            }
        )

    wanted_clients = max(3, n_entries // 200) if n_clients is None else n_clients
    wanted_clients = max(1, min(5000, wanted_clients)) if n_clients is None else max(1, wanted_clients)
    clients: list[dict[str, Any]] = []
    seen_names: set[str] = set()
    for i in range(wanted_clients):
        name = f"{choice(_CLIENT_A)} {choice(_CLIENT_B)} {choice(_CLIENT_SUFFIX)}".strip()
        if name in seen_names:
            name = f"{name} {i + 1}"
        seen_names.add(name)
        created_at, updated_at = before_window(10, 800)
        clients.append(
            {
                "id": 5_735_000 + i * 11 + rng.randrange(1, 11),
                "name": name,
                "is_active": rand() < 0.95,
                "address": f"{rng.randrange(1, 999)} {choice(_STREETS)}\n{choice(_CITIES)}",
                "statement_key": f"{rng.getrandbits(128):032x}",
                "currency": _CURRENCY_CYCLE[i % len(_CURRENCY_CYCLE)],
                "created_at": created_at,
                "updated_at": updated_at,
            }
        )

    user_frags = {
        u["id"]: '"user":' + _dumps_str({"id": u["id"], "name": f"{u['first_name']} {u['last_name']}"}) for u in users
    }
    cost_reprs = {u["id"]: repr(u["cost_rate"]) for u in users}
    task_frags = {t["id"]: '"task":' + _dumps_str({"id": t["id"], "name": t["name"]}) for t in tasks}

    projects: list[dict[str, Any]] = []
    user_assignments: dict[tuple[int, int], dict[str, Any]] = {}
    task_assignments: dict[tuple[int, int], dict[str, Any]] = {}
    # Per project, everything an entry needs: ids, fragments and rate reprs, precomputed once.
    plans: list[tuple[Any, ...]] = []
    next_project_id = 14_300_000
    next_ua_id = 125_000_000
    next_ta_id = 155_000_000
    for c_idx, client in enumerate(clients):
        currency = client["currency"]
        rates = _RATES[currency]
        client_ref = {"id": client["id"], "name": client["name"], "currency": currency}
        client_frag = '"client":' + _dumps_str(client_ref)
        prefix = (_ascii_slug(client["name"])[:3] or "prj").upper()
        for j in range(1 + int(rand() * 4)):
            next_project_id += rng.randrange(3, 40)
            pid = next_project_id
            bill_by = choice(("People", "People", "Project", "Tasks"))
            created_at, updated_at = before_window(5, 400)
            project = {
                "id": pid,
                "name": choice(_PROJECT_NAMES),
                "code": f"{prefix}-{c_idx + 1:04d}-{j + 1}",
                "is_active": client["is_active"] and rand() < 0.9,
                "is_billable": rand() < 0.99,
                "bill_by": bill_by,
                "hourly_rate": choice(rates) if bill_by == "Project" else None,
                "budget": choice((None, None, None, 120.0, 250.0, 600.0)),
                "client": dict(client_ref),
                "created_at": created_at,
                "updated_at": updated_at,
            }
            projects.append(project)
            project_ref = {"id": pid, "name": project["name"], "code": project["code"]}
            project_frag = '"project":' + _dumps_str(project_ref)
            team = []
            for t_i, user in enumerate(rng.sample(users, 1 + int(rand() * min(6, n_users)))):
                next_ua_id += rng.randrange(2, 30)
                created_at, updated_at = before_window(1, 5)
                ua = {
                    "id": next_ua_id,
                    "is_project_manager": t_i == 0,
                    "is_active": True,
                    "budget": None,
                    "created_at": created_at,
                    "updated_at": updated_at,
                    "hourly_rate": choice(rates),
                }
                user_assignments[(user["id"], pid)] = ua
                team.append((user["id"], user_frags[user["id"]], '"user_assignment":' + _dumps_str(ua),
                             repr(ua["hourly_rate"]), cost_reprs[user["id"]]))  # fmt: skip
            ptasks = []
            for task in rng.sample(tasks, 3 + int(rand() * 4)):
                next_ta_id += rng.randrange(2, 30)
                created_at, updated_at = before_window(1, 5)
                ta_billable = bool(task["billable_by_default"])
                ta = {
                    "id": next_ta_id,
                    "billable": ta_billable,
                    "is_active": True,
                    "created_at": created_at,
                    "updated_at": updated_at,
                    "hourly_rate": choice(rates) if ta_billable else None,
                    "budget": None,
                }
                task_assignments[(pid, task["id"])] = ta
                ptasks.append((task_frags[task["id"]], '"task_assignment":' + _dumps_str(ta), ta_billable,
                               repr(ta["hourly_rate"])))  # fmt: skip
            plans.append(
                (
                    pid,
                    client["id"],
                    f"{client_frag},{project_frag}",
                    project["is_billable"],
                    bill_by,
                    repr(project["hourly_rate"]),
                    "true" if project["budget"] is not None else "false",
                    team,
                    ptasks,
                )
            )

    # Spent dates/creation times first, sorted, so ids follow creation order like in Harvest.
    weekend = [(first_day + timedelta(days=d)).weekday() >= 5 for d in range(days)]
    keys = [0] * n_entries
    for i in range(n_entries):
        d = int(rand() * days)
        if weekend[d] and rand() < 0.75:
            d = int(rand() * days)
        keys[i] = d * 86400 + 28800 + int(rand() * 54000)  # created 08:00-23:00 on the spent date
    keys.sort()

    date_strs = [(first_day + timedelta(days=d)).isoformat() for d in range(days)]
    notes_json = [_dumps_str(n) for n in _NOTES]
    odd_json = [_dumps_str(n) for n in _ODD_NOTES]
    reason_approved, reason_invoiced = _dumps_str(LOCKED_APPROVED), _dumps_str(LOCKED_INVOICED)
    jb = ("false", "true")
    n_plans = len(plans)
    last_day = days - 1
    invoices: dict[tuple[int, str], str] = {}
    invoice_id, invoice_number = 30_100_000, 1000
    entries: list[EntryRow] = [None] * n_entries  # type: ignore[list-item]

    for i in range(n_entries):
        key = keys[i]
        d = key // 86400
        created = window_start + key
        entry_id = 1_900_000_000 + i * 3 + int(rand() * 3)
        plan = plans[int(rand() * n_plans)]
        pid, client_id, cp_frag, p_billable, bill_by, p_rate, budgeted, team, ptasks = plan
        user_id, user_frag, ua_frag, ua_rate, cost_rate = team[int(rand() * len(team))]
        task_frag, ta_frag, ta_billable, ta_rate = ptasks[int(rand() * len(ptasks))]
        cents = 10 + int(rand() * 791)
        hours = repr(cents / 100)
        rounded = repr(-(-cents // 25) * 0.25)
        billable = p_billable and ta_billable
        if not billable:
            rate = "null"
        elif bill_by == "People":
            rate = ua_rate
        elif bill_by == "Project":
            rate = p_rate
        else:
            rate = ta_rate
        running = d == last_day and rand() < 0.05
        closed = not running and rand() < 0.85
        billed = billable and not running and rand() < 0.04
        r = rand()
        if r < 0.6:
            updated = created
        else:
            # edited within 3 days (most) or 60 days; never after the window, and never piled up on
            # its last second (a pile-up would make every incremental re-read it through the overlap)
            span = min(window_end - created, 259200 if r < 0.9 else 5184000)
            updated = created + int(rand() * span)
        r = rand()
        if r < 0.05:
            notes = odd_json[int(rand() * len(odd_json))]
        elif r < 0.3:
            notes = "null"
        elif r < 0.65:
            notes = notes_json[int(rand() * len(notes_json))]
        else:
            notes = notes_json[int(rand() * len(notes_json))][:-1] + f' (#{100 + int(rand() * 9900)})"'
        spent = date_strs[d]
        created_at = ts(created)
        updated_at = created_at if updated == created else ts(updated)
        timer = f'"{created_at}"' if running else "null"
        if billed:
            inv_key = (client_id, spent[:7])
            invoice = invoices.get(inv_key)
            if invoice is None:
                invoice_id += 7
                invoice_number += 1
                invoice = invoices[inv_key] = f'{{"id":{invoice_id},"number":"{invoice_number}"}}'
            reason = reason_invoiced
        else:
            invoice = "null"
            reason = reason_approved if closed else "null"
        body = (
            f'{{"id":{entry_id},"spent_date":"{spent}","hours":{hours},"hours_without_timer":{hours},'
            f'"rounded_hours":{rounded},"notes":{notes},"is_locked":{jb[closed or billed]},'
            f'"locked_reason":{reason},"is_closed":{jb[closed]},"is_billed":{jb[billed]},'
            f'"timer_started_at":{timer},"started_time":null,'
            f'"ended_time":null,"is_running":{jb[running]},"billable":{jb[billable]},"budgeted":{budgeted},'
            f'"billable_rate":{rate},"cost_rate":{cost_rate},"created_at":"{created_at}",'
            f'"updated_at":"{updated_at}",{user_frag},{cp_frag},{task_frag},{ua_frag},{ta_frag},'
            f'"invoice":{invoice},"external_reference":null}}'
        ).encode()
        entries[i] = EntryRow(entry_id, spent, updated_at, billed, running, client_id, pid, user_id, body)

    return Dataset(
        seed=seed,
        anchor=anchor,
        days=days,
        clients=clients,
        projects=projects,
        tasks=tasks,
        users=users,
        user_assignments=user_assignments,
        task_assignments=task_assignments,
        entries=entries,
    )
