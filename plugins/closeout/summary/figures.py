"""The weekly summary's figures (and the close report's margin view), read set-based from the public views.

Per client, project and person: approved hours, billable hours and value, non-billable hours, contractor cost
(hours x the payee's cost rate, in the payee's currency, rounded once per person-project line), and approved
expenses. Margin is per client and currency: billable value - contractor cost - non-billable expenses, each
only in its own currency (no conversion, ever). Money is integer minor units beside the currency's exponent;
hours are ``Decimal``.

A person without a payee configuration has no cost: their line's cost is ``None`` and every margin they touch
says how many hours are uncosted and whose, so a missing rate never reads as zero cost.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import date
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row

from closeout.paths import load_sql

ZERO = Decimal(0)


@dataclass(frozen=True)
class TimeLine:
    """Approved time of one person on one project of one client, in the entries' currency."""

    client_key: str
    project_key: str
    user_key: str
    currency: str
    exponent: int
    approved_hours: Decimal
    billable_hours: Decimal
    billable_value_minor: int
    unrated_entries: int
    nonbillable_hours: Decimal
    entries: int
    cost_rate: Decimal | None
    cost_currency: str | None
    cost_exponent: int | None
    cost_minor: int | None

    @property
    def has_cost_rate(self) -> bool:
        return self.cost_minor is not None


@dataclass(frozen=True)
class ExpenseLine:
    """Approved expenses of one person on one project, in the expenses' currency."""

    client_key: str
    project_key: str
    user_key: str
    currency: str
    exponent: int
    billable_minor: int
    nonbillable_minor: int
    expenses: int


@dataclass(frozen=True)
class Margin:
    """One client (``client_key`` None: everyone) in one currency. Hours are those of entries in this currency;
    cost is what payees paid in this currency cost; ``uncosted_*`` are the approved hours (and people) of entries
    in this currency with no cost rate, so the margin is an upper bound until they get one."""

    client_key: str | None
    currency: str
    exponent: int
    approved_hours: Decimal = ZERO
    billable_hours: Decimal = ZERO
    nonbillable_hours: Decimal = ZERO
    billable_value_minor: int = 0
    cost_minor: int = 0
    billable_expenses_minor: int = 0
    nonbillable_expenses_minor: int = 0
    unrated_entries: int = 0
    uncosted_hours: Decimal = ZERO
    uncosted_people: tuple[str, ...] = ()

    @property
    def margin_minor(self) -> int:
        """Billable value less contractor cost less non-billable expenses (billable expenses pass through)."""
        return self.billable_value_minor - self.cost_minor - self.nonbillable_expenses_minor

    @property
    def complete(self) -> bool:
        """Every hour has a cost rate and every billable entry a value: the margin is the margin."""
        return not self.uncosted_people and self.unrated_entries == 0


MARGIN_SUMS = (
    "approved_hours", "billable_hours", "nonbillable_hours", "billable_value_minor", "cost_minor",
    "billable_expenses_minor", "nonbillable_expenses_minor", "unrated_entries", "uncosted_hours",
)  # fmt: skip


def margins(lines: Iterable[TimeLine], expenses: Iterable[ExpenseLine]) -> tuple[Margin, ...]:
    """Per client and currency, sorted by currency then client. A currency appears for a client when it has
    time, cost or expenses in it."""
    acc: dict[tuple[str, str], dict[str, Any]] = {}
    exponents: dict[str, int] = {}

    def row(client: str, currency: str, exponent: int) -> dict[str, Any]:
        exponents[currency] = exponent
        found = acc.get((client, currency))
        if found is None:  # built only for a new client and currency: this runs once per line of a busy week
            found = acc[(client, currency)] = {name: (ZERO if "hours" in name else 0) for name in MARGIN_SUMS} | {
                "people": set()}  # fmt: skip
        return found

    for line in lines:
        r = row(line.client_key, line.currency, line.exponent)
        r["approved_hours"] += line.approved_hours
        r["billable_hours"] += line.billable_hours
        r["nonbillable_hours"] += line.nonbillable_hours
        r["billable_value_minor"] += line.billable_value_minor
        r["unrated_entries"] += line.unrated_entries
        if line.cost_minor is None:
            r["uncosted_hours"] += line.approved_hours
            r["people"].add(line.user_key)
        else:
            row(line.client_key, line.cost_currency, line.cost_exponent)["cost_minor"] += line.cost_minor
    for x in expenses:
        r = row(x.client_key, x.currency, x.exponent)
        r["billable_expenses_minor"] += x.billable_minor
        r["nonbillable_expenses_minor"] += x.nonbillable_minor
    out = []
    for (client, currency), r in sorted(acc.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        people = tuple(sorted(r.pop("people")))
        out.append(Margin(client, currency, exponents[currency], uncosted_people=people, **r))
    return tuple(out)


def currency_totals(rows: Sequence[Margin]) -> tuple[Margin, ...]:
    """The per-client margins summed per currency (client_key None)."""
    out = []
    for currency in sorted({m.currency for m in rows}):
        mine = [m for m in rows if m.currency == currency]
        sums = {name: sum((getattr(m, name) for m in mine), ZERO if "hours" in name else 0) for name in MARGIN_SUMS}
        people = tuple(sorted({p for m in mine for p in m.uncosted_people}))
        out.append(Margin(None, currency, mine[0].exponent, uncosted_people=people, **sums))
    return tuple(out)


@dataclass(frozen=True)
class Figures:
    """One bucket's (a week's, a month's) lines, expenses and margins."""

    start: date
    end: date
    lines: tuple[TimeLine, ...]
    expenses: tuple[ExpenseLine, ...]
    margins: tuple[Margin, ...] = field(init=False)
    totals: tuple[Margin, ...] = field(init=False)

    def __post_init__(self) -> None:
        client_margins = margins(self.lines, self.expenses)
        object.__setattr__(self, "margins", client_margins)
        object.__setattr__(self, "totals", currency_totals(client_margins))

    @property
    def uncosted(self) -> dict[str, Decimal]:
        """Person -> approved hours with no cost rate (every client, every currency)."""
        out: dict[str, Decimal] = defaultdict(lambda: ZERO)
        for line in self.lines:
            if not line.has_cost_rate:
                out[line.user_key] += line.approved_hours
        return dict(sorted(out.items()))

    def keyed(self) -> dict[str, dict[str, str]]:
        """The figures a later summary compares against (``client|currency`` -> measure -> exact text), so
        "what changed since last summarised" is a comparison of two of these."""
        out = {}
        for m in self.margins:
            out[f"{m.client_key}|{m.currency}"] = {
                "approved_hours": format(m.approved_hours, "f"), "billable_hours": format(m.billable_hours, "f"),
                "nonbillable_hours": format(m.nonbillable_hours, "f"),
                "billable_value_minor": str(m.billable_value_minor), "cost_minor": str(m.cost_minor),
                "billable_expenses_minor": str(m.billable_expenses_minor),
                "nonbillable_expenses_minor": str(m.nonbillable_expenses_minor), "margin_minor": str(m.margin_minor),
                "uncosted_hours": format(m.uncosted_hours, "f"),
            }  # fmt: skip
        return out


TIME_LINE_FIELDS = tuple(f.name for f in fields(TimeLine))
TIME_LINE_COLUMNS = ("bucket_start", *TIME_LINE_FIELDS)  # time_lines.sql, then payee_name
WEEK_TIME_COLUMNS = ("part", "bucket_start", "spent_date", *TIME_LINE_FIELDS)  # week_time.sql


def _line(v: Sequence[Any]) -> TimeLine:
    """A TimeLine from the query's columns in field order. Money and counts are ints, hours and rates
    ``Decimal``, as the rows arrive (sums of bigint come as numeric, hence ``int``)."""
    return TimeLine(
        v[0], v[1], v[2], v[3], int(v[4]), Decimal(v[5]), Decimal(v[6]), int(v[7]), int(v[8]), Decimal(v[9]),
        int(v[10]), None if v[11] is None else Decimal(v[11]), v[12], None if v[13] is None else int(v[13]),
        None if v[14] is None else int(v[14]),
    )  # fmt: skip


def _tuples(conn: psycopg.Connection, name: str, params: dict[str, Any], columns: tuple[str, ...]) -> list[tuple]:
    """A summary query's rows as plain tuples: a busy week has some 35,000 lines, and a dict per row plus keyword
    construction was a third of a second of the summary's budget. The column order is checked against
    ``columns``, so a reordered query fails loudly instead of filling the wrong fields."""
    with conn.cursor() as cur:
        cur.execute(load_sql(f"summary/{name}.sql"), params)
        names = tuple(c.name for c in cur.description or ())[: len(columns)]
        if names != columns:
            raise RuntimeError(f"{name}.sql columns {names} are not {columns}")
        return cur.fetchall()


def _expense_line(r: dict[str, Any]) -> ExpenseLine:
    return ExpenseLine(
        client_key=r["client_key"], project_key=r["project_key"], user_key=r["user_key"], currency=r["currency"],
        exponent=int(r["exponent"]), billable_minor=int(r["billable_minor"]),
        nonbillable_minor=int(r["nonbillable_minor"]), expenses=int(r["expenses"]),
    )  # fmt: skip


def rows(conn: psycopg.Connection, name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(load_sql(f"summary/{name}.sql"), params).fetchall()


def read_figures(conn: psycopg.Connection, bucket: str, start: date, end: date) -> dict[date, Figures]:
    """Figures per bucket (``week`` or ``month``) starting in ``start``..``end``: two set-based queries however
    many buckets. Buckets with neither time nor expenses are absent."""
    if bucket not in ("week", "month"):
        raise ValueError(f"bucket {bucket!r}: expected 'week' or 'month'")
    params = {"bucket": bucket, "range_start": start, "range_end": end}
    lines: dict[date, list[TimeLine]] = defaultdict(list)
    for r in _tuples(conn, "time_lines", params, TIME_LINE_COLUMNS):
        lines[r[0]].append(_line(r[1:16]))
    return _buckets(conn, bucket, params, lines)


def read_week(conn: psycopg.Connection, start: date, end: date, week_start: date,
              week_end: date) -> tuple[dict[date, Figures], tuple[dict[str, Any], ...]]:  # fmt: skip
    """The weekly summary's time in one pass (``week_time.sql``): figures per week starting in ``start``..``end``
    (as ``read_figures(conn, "week", start, end)``) and the payroll rows of ``week_start``..``week_end`` (as
    ``payroll.sql``), from one read of the entries instead of two."""
    params = {"bucket": "week", "range_start": start, "range_end": end, "week_start": week_start,
              "week_end": week_end}  # fmt: skip
    lines: dict[date, list[TimeLine]] = defaultdict(list)
    payroll = []
    for r in _tuples(conn, "week_time", params, WEEK_TIME_COLUMNS):
        if r[0] == "line":
            lines[r[1]].append(_line(r[3:18]))
        else:
            payroll.append({"user_key": r[5], "spent_date": r[2], "client_key": r[3], "project_key": r[4],
                            "hours": r[8], "billable_hours": r[9], "entries": r[13]})  # fmt: skip
    return _buckets(conn, "week", params, lines), tuple(payroll)


def _buckets(conn: psycopg.Connection, bucket: str, params: dict[str, Any],
             lines: dict[date, list[TimeLine]]) -> dict[date, Figures]:  # fmt: skip
    """The buckets' figures: their time lines and their approved expenses (read here). Buckets with neither are
    absent."""
    expenses: dict[date, list[ExpenseLine]] = defaultdict(list)
    for r in rows(conn, "expenses", params):
        expenses[r["bucket_start"]].append(_expense_line(r))
    out = {}
    for first in sorted({*lines, *expenses}):
        last = _bucket_end(bucket, first)
        out[first] = Figures(first, last, tuple(lines.get(first, ())), tuple(expenses.get(first, ())))
    return out


def _bucket_end(bucket: str, first: date) -> date:
    from datetime import timedelta

    if bucket == "week":
        return first + timedelta(days=6)
    following = date(first.year + (first.month == 12), first.month % 12 + 1, 1)
    return following - timedelta(days=1)


def figures_for(conn: psycopg.Connection, bucket: str, start: date, end: date) -> Figures:
    """One bucket's figures (empty when nothing was approved or spent in it)."""
    return read_figures(conn, bucket, start, end).get(start) or Figures(start, end, (), ())


def names(conn: psycopg.Connection, keys: Iterable[str]) -> dict[str, str]:
    """Key -> display name, for the keys that have one (clients, projects, people)."""
    wanted = sorted({k for k in keys if k})
    if not wanted:
        return {}
    return {r["key"]: r["name"] for r in rows(conn, "names", {"keys": wanted}) if r["name"]}
