"""The payouts gate: no open payout hold, the latest reconciliation all green, and a green reconciliation
covering the billing period of every invoice whose work is about to be paid.

"The latest run of any period" is not enough: a green run for October says nothing about November's invoices.
So, per billing period of the invoices of the pending items, the latest finished run that covers it (a run for
that month, or a full run with a ledger cut-off after the period) must be green
(``include/sql/payouts/05_recon_coverage.sql``).

A paused DAG is no lock (a trigger from the UI unpauses it), so the first task of ``closeout_payouts`` asks
the warehouse itself, on every run, and the release asks again right before the first transfer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg

from closeout.gate.holds import payouts_blocked

# Status words of a passing check: closeout.recon records 'passed' ('success' is accepted too). A check
# 'not_applicable' (its input, such as the accounting system's own export, was never ingested) compared
# nothing and blocks nothing, but a run must pass at least one check; 'failed', 'error' or anything else block.
GREEN_STATUSES = ("passed", "success")
NOT_BLOCKING = ("not_applicable",)
# Columns that order reconciliation runs in time, in order of preference; run_id itself as the last resort.
_RUN_TIME_COLUMNS = ("finished_at", "checked_at", "run_at", "created_at", "recorded_at", "started_at")


@dataclass
class GateVerdict:
    reasons: list[str] = field(default_factory=list)
    hold_ids: list[int] = field(default_factory=list)
    recon_run_id: str | None = None

    @property
    def open(self) -> bool:
        return not self.reasons


def check(conn: psycopg.Connection, *, batch_ids: list[str] | None = None) -> GateVerdict:
    """Holds, the latest reconciliation, and coverage of the pending items (of ``batch_ids``, or all)."""
    verdict = GateVerdict()
    for hold in payouts_blocked(conn):
        verdict.hold_ids.append(hold.hold_id)
        verdict.reasons.append(
            f"payout hold {hold.hold_id} is open since {hold.opened_at:%Y-%m-%d %H:%M}Z "
            f"({hold.check_name}, period {hold.period or '-'}): {hold.reason}"
        )
    _check_recon(conn, verdict)
    if verdict.recon_run_id is not None and _is_table(conn, "closeout_data.recon_runs"):
        _check_coverage(conn, verdict, batch_ids)
    return verdict


def _is_table(conn: psycopg.Connection, name: str) -> bool:
    (found,) = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(found)


def _check_coverage(conn: psycopg.Connection, verdict: GateVerdict, batch_ids: list[str] | None) -> None:
    from closeout.paths import load_sql

    rows = conn.execute(
        load_sql("payouts/05_recon_coverage.sql"),
        {"batch_ids": batch_ids, "green": list(GREEN_STATUSES), "not_blocking": list(NOT_BLOCKING)},
    ).fetchall()
    for start, end, run_id, period, green, failing in rows:
        span = f"{start:%Y-%m-%d}..{end:%Y-%m-%d}"
        if run_id is None:
            verdict.reasons.append(f"no finished reconciliation covers the billing period {span} of work to be paid")
        elif not green:
            verdict.reasons.append(
                f"the reconciliation covering the billing period {span} ({run_id}, period {period or 'full'}) "
                f"is not green: {failing or 'no check passed'}"
            )


def _check_recon(conn: psycopg.Connection, verdict: GateVerdict) -> None:
    (exists,) = conn.execute("SELECT to_regclass('closeout.recon_checks') IS NOT NULL").fetchone()
    if not exists:
        verdict.reasons.append("no reconciliation has run (closeout.recon_checks does not exist)")
        return
    run_id = _latest_run(conn)
    if run_id is None:
        verdict.reasons.append("no reconciliation has run (closeout.recon_checks is empty)")
        return
    verdict.recon_run_id = run_id
    rows = conn.execute(
        "SELECT check_name, lower(coalesce(status, '')) FROM closeout.recon_checks WHERE run_id::text = %s "
        "ORDER BY check_name",
        (run_id,),
    ).fetchall()
    failing = [(name, status) for name, status in rows if status not in GREEN_STATUSES + NOT_BLOCKING]
    if failing:
        listed = ", ".join(f"{name}={status}" for name, status in failing[:10])
        verdict.reasons.append(f"the latest reconciliation ({run_id}) is not green: {listed}")
    elif not any(status in GREEN_STATUSES for _, status in rows):
        verdict.reasons.append(f"the latest reconciliation ({run_id}) passed no check")


def _latest_run(conn: psycopg.Connection) -> str | None:
    """The latest finished reconciliation run (closeout.recon_runs when the recon stage provides it), else the
    run of the most recent check row."""
    (has_runs,) = conn.execute("SELECT to_regclass('closeout.recon_runs') IS NOT NULL").fetchone()
    if has_runs and _columns(conn, "recon_runs") >= {"run_id", "finished_at"}:
        row = conn.execute(
            """SELECT r.run_id::text FROM closeout.recon_runs r
               WHERE r.finished_at IS NOT NULL
                 AND EXISTS (SELECT 1 FROM closeout.recon_checks c WHERE c.run_id::text = r.run_id::text)
               ORDER BY r.finished_at DESC, r.run_id::text DESC LIMIT 1"""
        ).fetchone()
        if row is not None:
            return row[0]
    order = next((c for c in _RUN_TIME_COLUMNS if c in _columns(conn, "recon_checks")), None)
    order_by = f"{order} DESC NULLS LAST, run_id::text DESC" if order else "run_id::text DESC"
    row = conn.execute(f"SELECT run_id::text FROM closeout.recon_checks ORDER BY {order_by} LIMIT 1").fetchone()
    return row[0] if row else None


def _columns(conn: psycopg.Connection, view: str) -> set[str]:
    return {
        name
        for (name,) in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'closeout' AND table_name = %s",
            (view,),
        ).fetchall()
    }
