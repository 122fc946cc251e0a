"""Incident packs: every payout hold gets one, and a hold is released only once its pack exists (docs/evidence.md).

The pack is what finance and an auditor read to judge the hold without SQL: the hold, the reconciliation run that
opened it (with where its Data Docs are), the failing checks and their difference rows, the alerts about it and its
timeline. It is written when the hold is opened (``closeout.gate.holds.open_hold``), its location is recorded on
the hold (``closeout_data.record_hold_evidence``, migration 0029) and ``python -m closeout.gate release`` refuses a
hold whose pack is missing, naming the command that builds it late::

    python -m closeout.evidence incident --hold-id N

Rebuilding a pack (before release) refreshes it: the alerts sent after the hold opened then appear in it.
Folder: ``evidence/holds/hold-<id>-<opened at, UTC>/`` -- the opening time keeps two warehouses' hold 7 apart
when they share one artifact store.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import psycopg

from closeout import artifacts
from closeout.evidence.bundle import Pack, query, read_index, write_pack
from closeout.evidence.packs import snapshot

log = logging.getLogger(__name__)

# (file name, SQL file, what it holds)
INCIDENT = (
    ("hold", "hold.sql", "the payout hold as recorded"),
    ("recon_run", "hold_recon_run.sql", "the reconciliation run that opened it, with its Data Docs location"),
    ("failing_checks", "hold_failing_checks.sql", "the checks of that run that failed or errored (the hold's first)"),
    ("evidence_rows", "hold_evidence_rows.sql", "the difference rows behind them, largest first"),
    ("alert_deliveries", "hold_alerts.sql", "the alerts about it: finance's hold alerts, the failure notifiers'"),
    ("timeline", "hold_timeline.sql", "what happened to the hold, in order"),
)
BUILD_LATE = "python -m closeout.evidence incident --hold-id {hold_id}"


class IncidentPackMissing(RuntimeError):
    """The hold has no incident pack (or it cannot be read where the hold says it is)."""


def _hold_row(conn: psycopg.Connection, hold_id: int) -> tuple | None:
    return conn.execute(
        """SELECT hold_id, opened_at, check_name, period, recon_run_id, reason, released_at, evidence_pack
           FROM closeout_data.payout_holds WHERE hold_id = %s""",
        (hold_id,),
    ).fetchone()


def folder_parts(hold_id: int, opened_at) -> tuple[str, ...]:
    stamp = opened_at.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return ("evidence", "holds", f"hold-{hold_id}-{stamp}")


def build_incident_pack(conn: psycopg.Connection, hold_id: int) -> Pack:
    """Write the hold's incident pack and record its location on the hold. Committed on return."""
    with snapshot(conn):
        row = _hold_row(conn, hold_id)
        if row is None:
            raise IncidentPackMissing(f"payout hold {hold_id} does not exist")
        _id, opened_at, check_name, period, recon_run_id, reason, _released, _pack = row
        params = {"hold_id": hold_id}
        tables = [query(conn, name, about, sql_file, params) for name, sql_file, about in INCIDENT]
        recon = tables[1]
        data_docs = recon.rows[0][recon.columns.index("data_docs")] if recon.rows else None
        subject: dict[str, Any] = {
            "hold_id": hold_id, "opened_at": opened_at.isoformat(), "check_name": check_name, "period": period,
            "recon_run_id": recon_run_id, "reason": reason, "data_docs": data_docs,
            "data_docs_link": _link(data_docs),
            "release_with": f'python -m closeout.gate release --hold-id {hold_id} --why "..."',
        }  # fmt: skip
        pack = write_pack(conn, "incident", folder_parts(hold_id, opened_at), f"Payout hold {hold_id}", subject,
                          tables)  # fmt: skip
    with conn.transaction():
        conn.execute("SELECT closeout_data.record_hold_evidence(%s, %s)", (hold_id, pack.index))
    if not conn.autocommit:
        conn.commit()
    log.info("incident pack of payout hold %s: %s", hold_id, pack.index)
    return pack


def _link(location: str | None) -> str | None:
    try:
        return artifacts.link(location)
    except artifacts.ArtifactError:  # a store without links: the location is still in the pack
        return None


def write_incident_pack_safely(conn: psycopg.Connection, hold_id: int) -> str | None:
    """``build_incident_pack`` for the moment a hold opens: a pack that cannot be written (store down) must not
    stop the hold, the pause or the alert. Logged; the release then names the command that builds it late."""
    try:
        return build_incident_pack(conn, hold_id).index
    except Exception as exc:  # the hold matters more than its pack; release checks the pack
        if not conn.autocommit and conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
            conn.rollback()
        log.error("payout hold %s: incident pack not written (%s: %s); build it with: %s", hold_id,
                  type(exc).__name__, exc, BUILD_LATE.format(hold_id=hold_id))  # fmt: skip
        return None


def incident_pack_problem(conn: psycopg.Connection, hold_id: int) -> str | None:
    """Why the hold may not be released yet for want of its pack, or None when the pack is there: recorded on the
    hold, readable in the store, and about this very hold (same id and opening time)."""
    row = _hold_row(conn, hold_id)
    if row is None:
        return None  # the release itself reports an unknown hold
    _id, opened_at, *_rest, location = row
    build = BUILD_LATE.format(hold_id=hold_id)
    if not location:
        return f"payout hold {hold_id} has no incident pack; build it first: {build}"
    try:
        index = read_index(location)
    except Exception as exc:  # missing, unreadable, not JSON, or a store refusing: refuse the release either way
        return (f"payout hold {hold_id}: its incident pack {location} cannot be read ({type(exc).__name__}); "
                f"build it again: {build}")  # fmt: skip
    subject = index.get("subject") or {}
    if index.get("pack") != "incident" or subject.get("hold_id") != hold_id or not _same_time(
        subject.get("opened_at"), opened_at
    ):
        return f"payout hold {hold_id}: {location} is not this hold's incident pack; build it again: {build}"
    return None


def _same_time(text: Any, when: datetime) -> bool:
    """The pack's recorded opening time is the hold's (compared as instants: sessions differ in time zone)."""
    try:
        return datetime.fromisoformat(str(text)) == when
    except ValueError:
        return False
