"""Deterministic generator of a realistic Clockify workspace: users, clients, projects, tasks, time entries.

Time entries are compact :class:`EntryRow` tuples: the fields the sandbox filters, sorts and reports on, plus the
*pre-rendered* REST JSON bytes of the entry. A million entries then fit in about a gigabyte and a REST page is a
``b",".join`` of cached bytes. :func:`make_row` is the one renderer, used by the generator and by mutations alike,
so an edited entry is indistinguishable from a generated one.

Money is an integer in the currency's minor units, as Clockify sends it (USD 10000 = $100.00, JPY 15000 = ¥15,000).
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
    "APPROVAL_STATES",
    "ROUND_MINUTES",
    "WORKSPACE_COST_RATE",
    "WORKSPACE_CURRENCY",
    "WORKSPACE_RATE",
    "Dataset",
    "EntryRow",
    "dumps",
    "format_timestamp",
    "generate_dataset",
    "iso_duration",
    "make_row",
    "object_id",
    "parse_timestamp",
    "resolve_rate",
    "stamp",
]

WORKSPACE_CURRENCY = "USD"
WORKSPACE_RATE = 10000
WORKSPACE_COST_RATE = 4500
ROUND_MINUTES = 15  # the workspace rounds report durations *up* to this many minutes
APPROVAL_STATES = ("APPROVED", "PENDING", "UNSUBMITTED")
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

# Cycled per project so even tiny datasets carry EUR and zero-decimal JPY rates.
_CURRENCY_CYCLE = ("USD", "EUR", "USD", "JPY", "USD", "USD", "EUR", "USD", "USD", "JPY", "USD", "EUR")
_RATES: dict[str, tuple[int, ...]] = {
    "USD": (8000, 12500, 15000, 17500, 20000, 25000),
    "EUR": (9000, 11000, 13500, 16000, 21000),
    "JPY": (12000, 15000, 18000, 22000),
}
_MEMBER_RATES = (7500, 9000, 11000, 12000, 14000)
_COST_RATES = (3500, 4000, 5500, 6250, 7500)
_COLORS = ("#03A9F4", "#8BC34A", "#FF5722", "#9C27B0", "#607D8B", "#FFC107", "#E91E63", "#009688")
_TASK_NAMES = (
    "Design", "Development", "Project Management", "Meetings", "Research", "QA & Testing", "Documentation",
    "Support", "Internal", "Discovery", "Code review", "Deployment",
)  # fmt: skip
_PROJECT_NAMES = (
    "Website Redesign", "Mobile App", "Brand Refresh", "Data Migration", "Support Retainer", "SEO Audit",
    "Cloud Migration", "Analytics Dashboard", "ERP Rollout", "Marketing Campaign", "Security Review",
    "API Integration", "Quarterly Retainer", "Discovery Phase",
)  # fmt: skip
_CLIENT_A = (
    "Northwind", "Contoso", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Acme", "Hooli", "Vandelay",
    "Zürich", "Østerbro", "São Paulo", "Kraków", "Nordström", "O'Neil", "Blue Sky", "Red Rock", "Pied Piper",
    "Oceanic", "Cyberdyne", "Soylent", "Tyrell", "Gringotts", "Monarch", "Sterling", "Dunder", "東京",
)  # fmt: skip
_CLIENT_B = (
    "Traders", "Labs", "Consulting", "Media", "Logistics", "Foods", "Partners", "Systems", "Studios",
    "Holdings", "Analytics", "Ventures", "Design", "Health", "Energy", "Robotics",
)  # fmt: skip
_CLIENT_SUFFIX = ("Inc.", "LLC", "Ltd", "GmbH", "S.A.", "AG", "K.K.", "& Co.", "B.V.", "")
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
# Descriptions that break naive CSV/TSV/JSON handling downstream (two start with "=": CSV injection).
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
)


class EntryRow(NamedTuple):
    """One stored time entry: what the sandbox filters/sorts/reports on, plus its REST JSON ``body``.

    ``description`` is JSON text (ready to splice). Raw rows (``raw=True``) are served verbatim everywhere and
    any of their fields may be ``None`` when the raw object lacks or garbles it; ``None`` never filters out.
    """

    id: str | None
    user_id: str | None
    start: int | None  # epoch seconds
    end: int | None  # None while running
    project_id: str | None
    task_id: str | None
    billable: bool | None
    description: str
    rate: int | None  # resolved hourly rate, minor units
    currency: str | None
    cost: int | None  # cost rate, minor units of the workspace currency
    approval: str | None
    invoiced: bool | None
    raw: bool
    body: bytes


@dataclass
class Dataset:
    """A generated workspace; ``entries`` are in ascending (start, id) order, which the sandbox relies on."""

    seed: int
    anchor: date
    days: int
    workspace: dict[str, Any]
    users: list[dict[str, Any]]
    clients: list[dict[str, Any]]
    projects: list[dict[str, Any]]
    tasks: list[dict[str, Any]]
    entries: list[EntryRow]

    def to_bytes(self) -> bytes:
        """Canonical serialisation, so determinism can be checked byte for byte."""
        head = dumps(
            {
                "seed": self.seed,
                "anchor": self.anchor.isoformat(),
                "days": self.days,
                "workspace": self.workspace,
                "users": self.users,
                "clients": self.clients,
                "projects": self.projects,
                "tasks": self.tasks,
            }
        )
        lines = [f"{r.approval} {r.invoiced} ".encode() + r.body for r in self.entries]
        return head + b"\n" + b"\n".join(lines)


def dumps(obj: Any) -> bytes:
    """The one JSON encoding the sandbox serves (compact, UTF-8, non-ASCII kept as is)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def _dumps_str(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


_DAY_PREFIX: dict[int, str] = {}
_TIME_OF_DAY = [f"T{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}Z" for s in range(86400)]


def stamp(secs: int) -> str:
    """Epoch seconds -> ``YYYY-MM-DDTHH:MM:SSZ``, fast (date part cached per day, time part precomputed)."""
    day, rem = divmod(secs, 86400)
    prefix = _DAY_PREFIX.get(day)
    if prefix is None:
        prefix = _DAY_PREFIX[day] = date.fromordinal(_EPOCH_ORDINAL + day).isoformat()
    return prefix + _TIME_OF_DAY[rem]


def format_timestamp(moment: datetime | int) -> str:
    """Clockify's timestamp format in UTC, from a datetime (naive = UTC) or epoch seconds."""
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        moment = int(moment.timestamp())
    return stamp(int(moment))


def parse_timestamp(value: Any) -> datetime | None:
    """ISO 8601 date/datetime -> aware UTC datetime (naive means UTC); ``None`` if unparseable."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


_DURATIONS: dict[int, str] = {}


def iso_duration(seconds: int) -> str:
    """Seconds -> ISO 8601 duration the way Clockify writes it: ``PT1H30M``, ``PT45M``, ``PT2H0M5S``, ``PT0S``."""
    text = _DURATIONS.get(seconds)
    if text is None:
        hours, rem = divmod(seconds, 3600)
        minutes, secs = divmod(rem, 60)
        text = "PT"
        if hours:
            text += f"{hours}H"
        if minutes or (hours and secs):
            text += f"{minutes}M"
        if secs or not (hours or minutes):
            text += f"{secs}S"
        if seconds < 100_000:
            _DURATIONS[seconds] = text
    return text


def object_id(timestamp: int, machine: str, counter: int) -> str:
    """A 24-char lowercase hex id laid out like a MongoDB ObjectId (time, machine, counter), as Clockify's are."""
    return f"{timestamp & 0xFFFFFFFF:08x}{machine}{counter & 0xFFFFFF:06x}"


def _amount(rate: Any) -> int | None:
    return rate.get("amount") if isinstance(rate, dict) else None


def resolve_rate(
    workspace: dict[str, Any], user: dict[str, Any] | None, project: dict[str, Any] | None, task: dict[str, Any] | None
) -> tuple[int, str]:
    """The hourly rate Clockify applies: task > project member > project > workspace member > workspace."""
    if task is not None and _amount(task.get("hourlyRate")) is not None:
        return task["hourlyRate"]["amount"], task["hourlyRate"]["currency"]
    if project is not None:
        user_id = user["id"] if user else None
        for member in project.get("memberships", ()):
            if member["userId"] == user_id and _amount(member.get("hourlyRate")) is not None:
                return member["hourlyRate"]["amount"], member["hourlyRate"]["currency"]
        if _amount(project.get("hourlyRate")) is not None:
            return project["hourlyRate"]["amount"], project["hourlyRate"]["currency"]
    if user is not None:
        for member in user.get("memberships", ()):
            if member["targetId"] == workspace["id"] and _amount(member.get("hourlyRate")) is not None:
                return member["hourlyRate"]["amount"], member["hourlyRate"]["currency"]
    return workspace["hourlyRate"]["amount"], workspace["hourlyRate"]["currency"]


def cost_rate(workspace: dict[str, Any], user: dict[str, Any] | None) -> int:
    """The member's cost rate, else the workspace's (always in the workspace currency)."""
    if user is not None:
        for member in user.get("memberships", ()):
            if member["targetId"] == workspace["id"] and _amount(member.get("costRate")) is not None:
                return member["costRate"]["amount"]
    return workspace["costRate"]["amount"]


_JB = ("false", "true")


def make_row(
    *,
    id: str,
    user_id: str,
    start: int,
    end: int | None,
    project_id: str | None,
    task_id: str | None,
    billable: bool,
    description: str,
    rate: int,
    currency: str,
    cost: int,
    approval: str,
    invoiced: bool,
    workspace_id: str,
) -> EntryRow:
    """Render the REST JSON of an entry and pack it with its fields (``description`` is JSON text)."""
    if end is None:
        interval = f'{{"start":"{stamp(start)}","end":null,"duration":null}}'
    else:
        interval = f'{{"start":"{stamp(start)}","end":"{stamp(end)}","duration":"{iso_duration(end - start)}"}}'
    task = "null" if task_id is None else f'"{task_id}"'
    project = "null" if project_id is None else f'"{project_id}"'
    locked = approval == "APPROVED" or invoiced
    body = (
        f'{{"id":"{id}","description":{description},"tagIds":[],"userId":"{user_id}","billable":{_JB[billable]},'
        f'"taskId":{task},"projectId":{project},"workspaceId":"{workspace_id}","timeInterval":{interval},'
        f'"customFieldValues":[],"type":"REGULAR","kioskId":null,'
        f'"hourlyRate":{{"amount":{rate},"currency":"{currency}"}},'
        f'"costRate":{{"amount":{cost},"currency":"{WORKSPACE_CURRENCY}"}},"isLocked":{_JB[locked]}}}'
    ).encode()
    return EntryRow(
        id, user_id, start, end, project_id, task_id, billable, description, rate, currency, cost, approval,
        invoiced, False, body,
    )  # fmt: skip


_FOLD = str.maketrans({"ø": "o", "Ø": "O", "ł": "l", "Ł": "L", "ß": "ss", "æ": "ae", "Æ": "AE"})


def _ascii_slug(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.translate(_FOLD)).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum())


def generate_dataset(n_entries: int, *, seed: int = 7, anchor: date | None = None, days: int = 365) -> Dataset:
    """A workspace with ``n_entries`` time entries starting within the ``days`` that end with ``anchor``.

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
        return _generate(n_entries, seed=seed, anchor=anchor, days=days)
    finally:
        if gc_was_enabled:
            gc.enable()


def _generate(n_entries: int, *, seed: int, anchor: date, days: int) -> Dataset:
    rng = random.Random(seed)
    rand, choice = rng.random, rng.choice
    first_day = anchor - timedelta(days=days - 1)
    window_start = (first_day.toordinal() - _EPOCH_ORDINAL) * 86400
    catalog_machine = f"{rng.getrandbits(40):010x}"
    entry_machine = f"{rng.getrandbits(40):010x}"
    counter = iter(range(1, 1 << 24))

    def catalog_id() -> str:
        created = window_start - rng.randrange(30, 900) * 86400 + rng.randrange(86400)
        return object_id(created, catalog_machine, next(counter))

    ws_id = catalog_id()
    workspace: dict[str, Any] = {
        "id": ws_id,
        "name": "Closeout Sandbox Workspace",
        "hourlyRate": {"amount": WORKSPACE_RATE, "currency": WORKSPACE_CURRENCY},
        "costRate": {"amount": WORKSPACE_COST_RATE, "currency": WORKSPACE_CURRENCY},
        "imageUrl": "",
        "featureSubscriptionType": "PRO",
        "currencies": [
            {"id": catalog_id(), "code": code, "isDefault": code == WORKSPACE_CURRENCY}
            for code in ("USD", "EUR", "JPY")
        ],
        "workspaceSettings": {
            "timeRoundingInReports": True,
            "round": {"round": "Round up to", "minutes": str(ROUND_MINUTES)},
            "onlyAdminsSeeBillableRates": True,
            "onlyAdminsCreateProject": True,
            "defaultBillableProjects": True,
            "lockTimeEntries": None,
            "isProjectPublicByDefault": True,
            "forceProjects": False,
            "forceTasks": False,
            "trackTimeDownToSecond": True,
            "timeTrackingMode": "DEFAULT",
            "durationFormat": "FULL",
            "multiFactorEnabled": False,
        },
    }

    n_users = min(2000, max(3, n_entries // 2500))
    users: list[dict[str, Any]] = []
    for i in range(n_users):
        first, last = choice(_FIRST), choice(_LAST)
        uid = catalog_id()
        active = i == 0 or rand() < 0.95
        member_rate = None if rand() < 0.3 else {"amount": choice(_MEMBER_RATES), "currency": WORKSPACE_CURRENCY}
        users.append(
            {
                "id": uid,
                "email": f"{_ascii_slug(first)}.{_ascii_slug(last)}{i + 1}@example.com",
                "name": f"{first} {last}",
                "status": "ACTIVE",
                "activeWorkspace": ws_id,
                "defaultWorkspace": ws_id,
                "profilePicture": "",
                "settings": {"timeZone": "Etc/UTC", "weekStart": "MONDAY", "dateFormat": "YYYY-MM-DD"},
                "memberships": [
                    {
                        "userId": uid,
                        "hourlyRate": member_rate,
                        "costRate": {"amount": choice(_COST_RATES), "currency": WORKSPACE_CURRENCY},
                        "targetId": ws_id,
                        "membershipType": "WORKSPACE",
                        "membershipStatus": "ACTIVE" if active else "INACTIVE",
                    }
                ],
            }
        )

    n_clients = max(3, min(1000, n_entries // 2000))
    clients: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i in range(n_clients):
        name = f"{choice(_CLIENT_A)} {choice(_CLIENT_B)} {choice(_CLIENT_SUFFIX)}".strip()
        if name in seen:
            name = f"{name} {i + 1}"
        seen.add(name)
        clients.append(
            {
                "id": catalog_id(),
                "name": name,
                "workspaceId": ws_id,
                "archived": rand() < 0.05,
                "address": f"{rng.randrange(1, 999)} Main St\nSpringfield",
                "note": "",
                "email": f"billing@{_ascii_slug(name)[:20] or 'client'}.example",
            }
        )

    projects: list[dict[str, Any]] = []
    tasks: list[dict[str, Any]] = []
    # Per project what an entry needs: (project id, billable, team [(user, rate, currency, cost)], tasks).
    plans: list[tuple[str, bool, list[tuple[str, int, str, int]], list[tuple[str, bool, dict[str, Any]]]]] = []
    users_by_id = {u["id"]: u for u in users}
    for client in clients:
        for _ in range(1 + int(rand() * 4)):
            currency = _CURRENCY_CYCLE[len(projects) % len(_CURRENCY_CYCLE)]
            rates = _RATES[currency]
            pid = catalog_id()
            # Non-USD projects always carry a rate, so no entry mixes a USD member rate into an EUR project.
            p_rate = {"amount": choice(rates), "currency": currency} if currency != "USD" or rand() < 0.5 else None
            team = []
            for user in rng.sample(users, 1 + int(rand() * min(6, n_users))):
                m_rate = {"amount": choice(rates), "currency": currency} if rand() < 0.4 else None
                team.append(
                    {
                        "userId": user["id"],
                        "hourlyRate": m_rate,
                        "costRate": None,
                        "targetId": pid,
                        "membershipType": "PROJECT",
                        "membershipStatus": "ACTIVE",
                    }
                )
            project = {
                "id": pid,
                "name": choice(_PROJECT_NAMES),
                "hourlyRate": p_rate,
                "costRate": None,
                "clientId": client["id"],
                "clientName": client["name"],
                "workspaceId": ws_id,
                "billable": len(projects) % 10 != 2,  # every tenth project (the third first) is not billable
                "memberships": team,
                "color": choice(_COLORS),
                "estimate": {"estimate": "PT0S", "type": "AUTO"},
                "archived": client["archived"] or rand() < 0.05,
                "duration": "PT0S",
                "note": "",
                "template": False,
                "public": rand() < 0.7,
            }
            projects.append(project)
            ptasks = []
            for name in rng.sample(_TASK_NAMES, 2 + int(rand() * 5)):
                task = {
                    "id": catalog_id(),
                    "name": name,
                    "projectId": pid,
                    "assigneeIds": [],
                    "estimate": "PT0S",
                    "status": "ACTIVE" if rand() < 0.9 else "DONE",
                    "billable": name != "Internal",
                    "hourlyRate": {"amount": choice(rates), "currency": currency} if rand() < 0.25 else None,
                    "costRate": None,
                    "duration": "PT0S",
                }
                tasks.append(task)
                ptasks.append((task["id"], task["billable"], task))
            plan_team = []
            for member in team:
                user = users_by_id[member["userId"]]
                rate, cur = resolve_rate(workspace, user, project, None)
                plan_team.append((user["id"], rate, cur, cost_rate(workspace, user)))
            plans.append((pid, project["billable"], plan_team, ptasks))
    projects_by_id = {p["id"]: p for p in projects}
    no_project_rates = [
        (u["id"], *resolve_rate(workspace, u, None, None), cost_rate(workspace, u)) for u in users
    ]  # (user, rate, currency, cost)
    task_rates: dict[tuple[str, str, str], tuple[int, str]] = {}

    # Start times first, sorted, so ids (time + counter) follow start order like Clockify's ObjectIds.
    weekend = [(first_day + timedelta(days=d)).weekday() >= 5 for d in range(days)]
    starts = [0] * n_entries
    for i in range(n_entries):
        d = int(rand() * days)
        if weekend[d] and rand() < 0.75:
            d = int(rand() * days)
        starts[i] = window_start + d * 86400 + 25200 + int(rand() * 39600)  # 07:00-18:00 UTC
    starts.sort()
    last_day_start = window_start + (days - 1) * 86400

    plain = [_dumps_str(n) for n in _NOTES]
    odd = [_dumps_str(n) for n in _ODD_NOTES]
    n_plans = len(plans)
    entries: list[EntryRow] = [None] * n_entries
    for i in range(n_entries):
        start = starts[i]
        if rand() < 0.02 or not n_plans:
            user_id, rate, currency, cost = no_project_rates[int(rand() * len(no_project_rates))]
            project_id = task_id = None
            billable = False
        else:
            project_id, p_billable, team, ptasks = plans[int(rand() * n_plans)]
            user_id, rate, currency, cost = team[int(rand() * len(team))]
            billable = p_billable and rand() < 0.96
            if rand() < 0.9:
                task_id, t_billable, task = ptasks[int(rand() * len(ptasks))]
                billable = billable and t_billable
                if task["hourlyRate"] is not None:
                    cache_key = (user_id, project_id, task_id)
                    resolved = task_rates.get(cache_key)
                    if resolved is None:
                        resolved = task_rates[cache_key] = resolve_rate(
                            workspace, users_by_id[user_id], projects_by_id[project_id], task
                        )
                    rate, currency = resolved
            else:
                task_id = None
        # typed in: whole 5-minute steps, 5 min .. 8 h; from a timer: any second, skewed short
        duration = 300 * (1 + int(rand() * 96)) if rand() < 0.4 else 300 + int(rand() * rand() * 28501)
        running = start >= last_day_start and rand() < 0.05
        r = rand()
        approval = "UNSUBMITTED" if running or r >= 0.8 else "APPROVED" if r < 0.7 else "PENDING"
        invoiced = billable and not running and rand() < 0.0375
        if invoiced:
            approval = "APPROVED"  # invoiced time has been approved first
        r = rand()
        if r < 0.05:
            description = odd[int(rand() * len(odd))]
        elif r < 0.2:
            description = '""'
        elif r < 0.6:
            description = plain[int(rand() * len(plain))]
        else:
            description = plain[int(rand() * len(plain))][:-1] + f' (#{100 + int(rand() * 9900)})"'
        entries[i] = make_row(
            id=object_id(start, entry_machine, i),
            user_id=user_id,
            start=start,
            end=None if running else start + duration,
            project_id=project_id,
            task_id=task_id,
            billable=billable,
            description=description,
            rate=rate,
            currency=currency,
            cost=cost,
            approval=approval,
            invoiced=invoiced,
            workspace_id=ws_id,
        )

    return Dataset(
        seed=seed,
        anchor=anchor,
        days=days,
        workspace=workspace,
        users=users,
        clients=clients,
        projects=projects,
        tasks=tasks,
        entries=entries,
    )
