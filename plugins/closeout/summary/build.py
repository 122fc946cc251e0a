"""Assemble one week's summary: its figures, time still unapproved, payroll hours, and what changed in earlier
weeks since they were last summarised. Read in one snapshot (REPEATABLE READ, READ ONLY), so every figure on the
page, in the CSVs and in the mail comes from the same state of the warehouse.

"Changes since last summarised": every summary stores the figures it saw, for its own week and for each earlier
week it restated (``closeout_data.weekly_summary_figures``). The baseline of an earlier week X in the summary of
week W is the latest of those made by a summary before W; X's figures now are compared with it measure by measure,
and the time entry versions seen after the baseline was taken (late entries, edits, deletions) are counted. A rerun
of W compares against the same baselines, so it reports the same changes (plus any newer ones).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from closeout.summary import figures as fig
from closeout.summary.weeks import IsoWeek, parse_week

LOOKBACK_WEEKS = 8  # earlier weeks whose changes a summary reports (older changes show in the close report)


@dataclass(frozen=True)
class FigureChange:
    """One measure of one client and currency in an earlier week: as last summarised, and now."""

    week: str
    client_key: str
    currency: str
    measure: str
    was: str
    now: str

    @property
    def delta(self) -> Decimal:
        return Decimal(self.now) - Decimal(self.was)


@dataclass(frozen=True)
class WeekChanges:
    """What changed in one earlier week since ``baseline_at`` (when its figures were last summarised)."""

    week: str
    baseline_at: datetime
    figures: tuple[FigureChange, ...]
    versions: dict[str, dict[str, Any]]  # change kind (created, updated, deleted, restored) -> counts and hours

    @property
    def changed(self) -> bool:
        return bool(self.figures or self.versions)


@dataclass(frozen=True)
class WeeklySummary:
    week: IsoWeek
    generated_at: str
    figures_at: datetime
    figures: fig.Figures
    unapproved: tuple[dict[str, Any], ...]
    payroll: tuple[dict[str, Any], ...]
    changes: tuple[WeekChanges, ...]
    restated: dict[str, fig.Figures]  # earlier weeks with a baseline, as they are now (the next baselines)
    names: dict[str, str]

    def name(self, key: str | None) -> str:
        return self.names.get(key or "", "") if key else ""

    @property
    def unapproved_hours(self) -> Decimal:
        return sum((Decimal(u["week_hours"]) + Decimal(u["earlier_hours"]) for u in self.unapproved), Decimal(0))


def _baselines(conn: psycopg.Connection, week: IsoWeek) -> list[tuple[IsoWeek, datetime, dict]]:
    oldest = week.previous(LOOKBACK_WEEKS)
    found = conn.execute(
        """SELECT DISTINCT ON (f.week) f.week, f.figures_at, f.figures
           FROM closeout_data.weekly_summary_figures f
           WHERE f.week < %(week)s AND f.week >= %(oldest)s AND f.summarised_in < %(week)s
           ORDER BY f.week, f.summarised_in DESC""",
        {"week": week.label, "oldest": oldest.label},
    ).fetchall()
    return [(parse_week(w), at, figures) for w, at, figures in found]


def _diff(label: str, was: dict[str, dict[str, str]], now: dict[str, dict[str, str]]) -> tuple[FigureChange, ...]:
    out = []
    for key in sorted({*was, *now}):
        client, currency = key.rsplit("|", 1)
        before, after = was.get(key, {}), now.get(key, {})
        for measure in sorted({*before, *after}):
            a, b = before.get(measure, "0"), after.get(measure, "0")
            if Decimal(a) != Decimal(b):
                out.append(FigureChange(label, client, currency, measure, a, b))
    return tuple(out)


def build_summary(conn: psycopg.Connection, week: IsoWeek | str) -> WeeklySummary:
    """Read everything the week's summary shows, in one snapshot."""
    week = parse_week(week) if isinstance(week, str) else week
    fresh = conn.info.transaction_status == TransactionStatus.IDLE
    with conn.transaction():
        if fresh:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        conn.execute("SET LOCAL work_mem = '128MB'")  # a busy week's groupings sort in memory, not on disk
        (figures_at,) = conn.execute("SELECT now()").fetchone()
        baselines = _baselines(conn, week)
        versions: dict[str, dict[str, dict[str, Any]]] = {}
        if baselines:
            arrays = {
                "weeks": [b.label for b, _, _ in baselines], "starts": [b.start for b, _, _ in baselines],
                "ends": [b.end for b, _, _ in baselines], "figures_at": [at for _, at, _ in baselines],
            }  # fmt: skip
            for r in fig.rows(conn, "changed_entries", arrays):
                versions.setdefault(r["week"], {})[r["change"]] = {
                    "versions": int(r["versions"]), "entries": int(r["entries"]), "hours": Decimal(r["hours"])}
        # only a week with entries or expenses seen since its baseline can have changed: only those are re-read,
        # in the same pass as this week (one scan of the entries, however many weeks)
        changed = [b for b, _, _ in baselines if b.label in versions]
        # the week's payroll hours come from the same single read of the entries (week_time.sql)
        by_week, payroll = fig.read_week(conn, min([week, *changed]).start, week.end, week.start, week.end)
        current = by_week.get(week.start) or fig.Figures(week.start, week.end, (), ())
        restated = {b.label: by_week.get(b.start) or fig.Figures(b.start, b.end, (), ()) for b in changed}
        params = {"week_start": week.start, "week_end": week.end}
        unapproved = tuple(fig.rows(conn, "unapproved", params))
        keys = {k for line in current.lines for k in (line.client_key, line.project_key, line.user_key)}
        keys |= {k for x in current.expenses for k in (x.client_key, x.project_key, x.user_key)}
        keys |= {u["user_key"] for u in unapproved} | {k for p in payroll for k in (p["client_key"], p["project_key"])}
        keys |= {m.client_key for f in restated.values() for m in f.margins if m.client_key}
        names = fig.names(conn, keys)
    changes = tuple(
        WeekChanges(b.label, at, _diff(b.label, baseline, restated[b.label].keyed()) if b.label in restated else (),
                    versions.get(b.label, {}))
        for b, at, baseline in sorted(baselines, key=lambda x: x[0], reverse=True)
    )  # fmt: skip
    return WeeklySummary(
        week=week, generated_at=datetime.now(UTC).replace(microsecond=0).isoformat(), figures_at=figures_at,
        figures=current, unapproved=unapproved, payroll=payroll, changes=changes, restated=restated, names=names,
    )  # fmt: skip

