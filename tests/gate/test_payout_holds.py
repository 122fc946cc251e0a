"""Payout holds on real Postgres: one open hold per cause, releases recorded whole, holds kept as evidence,
and a green reconcile that releases nothing."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest
from closeout.gate import green, payouts_blocked
from closeout.gate.holds import HoldError, cause_key, get_hold, open_hold, release_hold
from closeout.warehouse.db import connect

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _open(conn: psycopg.Connection, check: str = "ar_vs_open_invoices", period: str = "2026-10", run: str = "r1"):
    return open_hold(conn, recon_run_id=run, check_name=check, period=period, reason=f"{check} breached")


def test_one_open_hold_per_cause(warehouse) -> None:
    with connect() as conn:
        first, created = _open(conn)
        again, created_again = _open(conn, run="r2")
        other, created_other = _open(conn, period="2026-11")
        assert created and not created_again and created_other
        assert again.hold_id == first.hold_id and again.recon_run_id == "r1"
        assert other.hold_id != first.hold_id
        assert [h.hold_id for h in payouts_blocked(conn)] == [first.hold_id, other.hold_id]
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                "INSERT INTO closeout_data.payout_holds (reason, recon_run_id, check_name, period, cause_key) "
                "VALUES ('x', 'r3', 'ar_vs_open_invoices', '2026-10', %s)",
                (cause_key("ar_vs_open_invoices", "2026-10"),),
            )
        conn.rollback()
    assert warehouse.scalar("SELECT count(*) FROM closeout.payout_holds WHERE released_at IS NULL") == 2


def test_release_records_who_when_why_and_only_once(warehouse) -> None:
    with connect() as conn:
        hold, _ = _open(conn)
        with pytest.raises(HoldError, match="--why"):
            release_hold(conn, hold.hold_id, by="ana@finance", why="  ")
        with pytest.raises(HoldError, match="does not exist"):
            release_hold(conn, 999999, by="ana@finance", why="x")
        released = release_hold(conn, hold.hold_id, by="ana@finance", why="difference explained: late import")
        assert released.released_by == "ana@finance" and released.released_at is not None
        assert released.release_reason == "difference explained: late import"
        with pytest.raises(HoldError, match="already released"):
            release_hold(conn, hold.hold_id, by="ben@finance", why="again")
        assert payouts_blocked(conn) == []
        reopened, created = _open(conn, run="r9")  # the same cause after a release is a new hold
        assert created and reopened.hold_id != hold.hold_id
    row = warehouse.rows(
        "SELECT released_by, release_reason, released_at IS NOT NULL FROM closeout.payout_holds WHERE hold_id = %s",
        (hold.hold_id,),
    )
    assert row == [("ana@finance", "difference explained: late import", True)]


def test_holds_are_evidence(warehouse) -> None:
    with connect() as conn:
        hold, _ = _open(conn)
        for statement in (
            "UPDATE closeout_data.payout_holds SET reason = 'edited' WHERE hold_id = %s",
            "DELETE FROM closeout_data.payout_holds WHERE hold_id = %s",
            "UPDATE closeout_data.payout_holds SET released_at = now() WHERE hold_id = %s",
        ):
            with pytest.raises(psycopg.Error):
                conn.execute(statement, (hold.hold_id,))
            conn.rollback()
        assert get_hold(conn, hold.hold_id) == hold


def test_green_reconcile_releases_nothing(warehouse) -> None:
    with connect() as conn:
        hold, _ = _open(conn)
        still_open = green(conn, check_name="ar_vs_open_invoices", period="2026-10")
        assert [h.hold_id for h in still_open] == [hold.hold_id]
        assert green(conn, check_name="other_check", period="2026-10") == []
        assert [h.hold_id for h in payouts_blocked(conn)] == [hold.hold_id]
    assert warehouse.scalar("SELECT released_at FROM closeout.payout_holds WHERE hold_id = %s", (hold.hold_id,)) is None


def test_release_command_takes_no_free_text_identity(warehouse) -> None:
    """Who releases comes from the person's Airflow token (tests/controls/test_hold_release.py), never ``--by``."""
    with connect() as conn:
        hold, _ = _open(conn)
    command = [sys.executable, "-m", "closeout.gate", "release", "--hold-id", str(hold.hold_id), "--by", "ana@finance"]
    done = subprocess.run([*command, "--why", "Xero caught up"], capture_output=True, text=True, env=dict(os.environ))
    assert done.returncode == 2 and "--by is not accepted" in done.stderr
    assert warehouse.scalar("SELECT released_at FROM closeout.payout_holds") is None
    listed = subprocess.run([sys.executable, "-m", "closeout.gate", "list"], capture_output=True, text=True)
    assert listed.returncode == 0 and "1 open payout hold(s)" in listed.stdout


def test_contract_view_columns(warehouse) -> None:
    columns = [
        row[0]
        for row in warehouse.rows(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'closeout' "
            "AND table_name = 'payout_holds' ORDER BY ordinal_position"
        )
    ]
    assert columns[:6] == ["hold_id", "opened_at", "reason", "recon_run_id", "released_at", "released_by"]
    assert {"release_reason", "check_name", "cause_key", "details"} <= set(columns)
