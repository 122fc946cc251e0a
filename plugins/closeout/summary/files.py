"""The weekly summary's data files and where they go: ``summaries/YYYY-Www/`` in the artifact store
(``CLOSEOUT_ARTIFACTS_URL``), written through ``closeout.artifacts`` (its credentials, whole-file writes).

``summary.csv`` (every line, expense, client margin and currency total), ``payroll.csv`` (approved hours per
person, day, client and project) and ``summary.json`` (everything the page shows). CSV cells go through the
accounting export's writer (``closeout.accounting.csv_safe``): text formula-neutralised and quoted, numbers bare
and exact, CRLF, no BOM. Money is minor units plus an exact major-unit number; never a float.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from closeout.accounting.csv_safe import LINE_END, decimal_number, major_units, neutralise
from closeout.summary.build import WeeklySummary
from closeout.summary.figures import Margin

FOLDER = "summaries"
NAMES = {"html": "summary.html", "csv": "summary.csv", "payroll": "payroll.csv", "json": "summary.json"}
NO_COST_RATE = "no cost rate"


def folder(week: str) -> str:
    """The week's folder location (not a link) in the artifact store."""
    from closeout import artifacts

    return artifacts.path(FOLDER, week)


def locations(week: str) -> dict[str, str]:
    """Kind -> location of each file of the week (computable before they exist)."""
    base = folder(week)
    return {kind: f"{base}/{name}" for kind, name in NAMES.items()}


class Figure(str):
    """A number cell's exact text, made from an ``int`` or a finite ``Decimal`` here (never from a float): written
    bare, as the accounting writer's ``Number`` is, at a fraction of its cost per cell."""


def _row(cells: list[Any] | tuple[Any, ...]) -> bytes:
    """``csv_safe.encode_row``'s encoding (text quoted and formula-neutralised by ``csv_safe.neutralise``,
    numbers bare, empty for None, CRLF) for cells that are ``str``, :class:`Figure` or None."""
    out = []
    append = out.append
    for cell in cells:
        kind = type(cell)
        if kind is Figure:
            append(cell)
        elif cell is None or cell == "":
            append("")
        elif kind is str:
            append(_text_cell(cell))
        elif isinstance(cell, str):
            append(_text_cell(str(cell)))
        else:
            raise TypeError(f"cells are text, Figure or None, not {type(cell).__name__}")
    return ",".join(out).encode("utf-8") + LINE_END


@lru_cache(maxsize=1 << 16)
def _text_cell(text: str) -> str:
    """A text cell, neutralised and quoted. Cached: keys, names, the week and the currency repeat on most of a
    busy week's 40,000 rows (bounded, so a long-lived worker does not grow with every week it summarises)."""
    return '"' + neutralise(text).replace('"', '""') + '"'


def _hours(value: Decimal | int | str) -> Figure:
    """Hours with at least two decimals (``2.50``), never rounded: more precise sums keep their digits."""
    d = value if type(value) is Decimal else Decimal(value)
    if not d.is_finite():
        return Figure(format(d.quantize(Decimal("0.01")) if d.as_tuple().exponent > -2 else d, "f"))
    # padding the plain text to two decimals is what quantize(0.01) does for fewer than two, without a Decimal
    # operation and a digit tuple per cell (a busy week writes over 100,000 hours cells)
    text = format(d, "f")
    point = text.find(".")
    if point < 0:
        return Figure(text + ".00")
    return Figure(text + "0" if len(text) - point == 2 else text)


def _count(n: int) -> Figure:
    return Figure(int(n))


def _major(amount: int, exponent: int) -> Figure:
    """``csv_safe.major_units`` by integer arithmetic: the same exact text (checked by the tests), without a
    Decimal quantize per cell (a busy week writes some hundred thousand amounts)."""
    if not exponent:
        return Figure(amount)
    whole, part = divmod(abs(amount), 10**exponent)
    sign = "-" if amount < 0 else ""
    return Figure(f"{sign}{whole}.{part:0{exponent}d}")


def _money(amount: int | None, exponent: int | None) -> list[Figure | None]:
    if amount is None or exponent is None:
        return [None, None]
    return [Figure(amount), _major(amount, exponent)]


# -- summary.csv --------------------------------------------------------------------------------------------------
SUMMARY_HEADER = (
    "week", "row", "client_key", "client_name", "project_key", "project_name", "user_key", "user_name", "currency",
    "entries", "approved_hours", "billable_hours", "nonbillable_hours", "billable_value_minor", "billable_value",
    "cost_currency", "cost_rate", "cost_minor", "cost", "billable_expenses_minor", "billable_expenses",
    "nonbillable_expenses_minor", "nonbillable_expenses", "margin_minor", "margin", "uncosted_hours", "note",
)  # fmt: skip


def _margin_row(s: WeeklySummary, kind: str, m: Margin) -> bytes:
    e = m.exponent
    note = f"{NO_COST_RATE}: {', '.join(m.uncosted_people)}" if m.uncosted_people else None
    if m.unrated_entries:
        note = "; ".join(filter(None, [note, f"{m.unrated_entries} billable entries without a rate"]))
    return _row([
        s.week.label, kind, m.client_key, s.name(m.client_key) or None, None, None, None, None, m.currency, None,
        _hours(m.approved_hours), _hours(m.billable_hours), _hours(m.nonbillable_hours),
        *_money(m.billable_value_minor, e), m.currency, None, *_money(m.cost_minor, e),
        *_money(m.billable_expenses_minor, e), *_money(m.nonbillable_expenses_minor, e), *_money(m.margin_minor, e),
        _hours(m.uncosted_hours), note,
    ])  # fmt: skip


def summary_csv(s: WeeklySummary) -> bytes:
    """Lines (person on project, in the entries' currency; cost in the payee's), expenses, then per client and
    currency the margin, then per currency the total."""
    out = [_row(list(SUMMARY_HEADER))]
    for line in s.figures.lines:
        e = line.exponent
        out.append(_row([
            s.week.label, "time", line.client_key, s.name(line.client_key) or None, line.project_key,
            s.name(line.project_key) or None, line.user_key, s.name(line.user_key) or None, line.currency,
            _count(line.entries), _hours(line.approved_hours), _hours(line.billable_hours),
            _hours(line.nonbillable_hours), *_money(line.billable_value_minor, e), line.cost_currency,
            None if line.cost_rate is None else Figure(decimal_number(line.cost_rate).text),
            *_money(line.cost_minor, line.cost_exponent), None, None, None, None, None, None,
            None if line.has_cost_rate else _hours(line.approved_hours),
            None if line.has_cost_rate else NO_COST_RATE,
        ]))  # fmt: skip
    for x in s.figures.expenses:
        out.append(_row([
            s.week.label, "expense", x.client_key, s.name(x.client_key) or None, x.project_key,
            s.name(x.project_key) or None, x.user_key, s.name(x.user_key) or None, x.currency, _count(x.expenses),
            None, None, None, None, None, None, None, None, None, *_money(x.billable_minor, x.exponent),
            *_money(x.nonbillable_minor, x.exponent), None, None, None, None,
        ]))  # fmt: skip
    out.extend(_margin_row(s, "client", m) for m in s.figures.margins)
    out.extend(_margin_row(s, "total", m) for m in s.figures.totals)
    return b"".join(out)


# -- payroll.csv --------------------------------------------------------------------------------------------------
PAYROLL_HEADER = ("week", "user_key", "user_name", "date", "client_key", "client_name", "project_key", "project_name",
                  "hours", "billable_hours", "entries")  # fmt: skip


def payroll_csv(s: WeeklySummary) -> bytes:
    """Approved hours per person, day, client and project: what payroll imports. Names are untrusted tracker text
    and are neutralised like every cell."""
    out = [_row(list(PAYROLL_HEADER))]
    for p in s.payroll:
        out.append(_row([
            s.week.label, p["user_key"], s.name(p["user_key"]) or None, p["spent_date"].isoformat(), p["client_key"],
            s.name(p["client_key"]) or None, p["project_key"], s.name(p["project_key"]) or None,
            _hours(p["hours"]), _hours(p["billable_hours"]), _count(p["entries"]),
        ]))  # fmt: skip
    return b"".join(out)


# -- summary.json -------------------------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def _fields(item: Any) -> dict[str, Any]:
    """A flat dataclass's fields (``asdict`` deep-copies every value: seconds over a busy week's lines)."""
    return {f.name: getattr(item, f.name) for f in fields(item)}


def _margin_doc(m: Margin) -> dict[str, Any]:
    doc = _fields(m)
    doc["uncosted_people"] = list(m.uncosted_people)
    doc["margin_minor"] = m.margin_minor
    doc["complete"] = m.complete
    for key in [k for k in doc if k.endswith("_minor")]:
        doc[key.removesuffix("_minor")] = major_units(doc[key], m.exponent).text
    return doc


def summary_document(s: WeeklySummary, *, parts: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Everything the page shows (and the snapshot the warehouse keeps), JSON-ready; ``parts`` limits it to
    those keys (the snapshot needs no lines)."""
    doc = {
        "week": s.week.label,
        "week_start": s.week.start,
        "week_end": s.week.end,
        "generated_at": s.generated_at,
        "figures_at": s.figures_at,
        "totals": lambda: [_margin_doc(m) for m in s.figures.totals],
        "clients": lambda: [{**_margin_doc(m), "client_name": s.name(m.client_key)} for m in s.figures.margins],
        "lines": lambda: [{**_fields(line), "has_cost_rate": line.has_cost_rate} for line in s.figures.lines],
        "expenses": lambda: [_fields(x) for x in s.figures.expenses],
        "no_cost_rate": {user: format(hours, "f") for user, hours in s.figures.uncosted.items()},
        "unapproved": [dict(u) for u in s.unapproved],
        "changes": [
            {"week": c.week, "baseline_at": c.baseline_at, "versions": c.versions,
             "figures": [{**asdict(f), "delta": format(f.delta, "f")} for f in c.figures]}
            for c in s.changes
        ],
        "names": lambda: dict(sorted(s.names.items())),
    }
    wanted = parts or tuple(doc)
    return {k: (doc[k]() if callable(doc[k]) else doc[k]) for k in wanted}


def to_json(document: dict[str, Any], indent: int | None = None) -> bytes:
    """Deterministic JSON (sorted keys). Compact by default: the C encoder, about ten times faster than an
    indented dump over a busy week's lines."""
    text = json.dumps(document, sort_keys=True, indent=indent, ensure_ascii=False, default=_plain)
    return (text + "\n").encode()


SNAPSHOT_PARTS = ("week", "totals", "clients", "no_cost_rate", "unapproved")


def snapshot(s: WeeklySummary, document: dict[str, Any] | None = None) -> dict[str, Any]:
    """The record's figures: the totals and client margins (JSON-plain), as kept in the warehouse; from
    ``document`` (``summary_document``) when the caller has it already."""
    parts = {k: document[k] for k in SNAPSHOT_PARTS} if document else summary_document(s, parts=SNAPSHOT_PARTS)
    return json.loads(to_json(parts))


def write(s: WeeklySummary, html: bytes, document: dict[str, Any] | None = None) -> dict[str, str]:
    """Write the data files first and the page last (a page that exists has its data beside it); returns
    kind -> location. Overwrites: a rerun re-renders in place."""
    from closeout import artifacts

    where = locations(s.week.label)
    document = document or summary_document(s)
    parts = {"csv": summary_csv(s), "payroll": payroll_csv(s), "json": to_json(document), "html": html}
    for kind in ("csv", "payroll", "json", "html"):
        artifacts.write(where[kind], parts[kind])
    return where
