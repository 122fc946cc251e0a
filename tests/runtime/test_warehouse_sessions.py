"""Warehouse sessions are bounded (statement, lock and idle-in-transaction timeouts, TCP keepalives), configurable
through the connection's extras, and name their task in application_name: read back from a real server."""

from __future__ import annotations

import time

import psycopg
import pytest
from runtime_support import set_warehouse_extra, task_context


def _show(conn: psycopg.Connection, name: str) -> str:
    return conn.execute(f"SHOW {name}").fetchone()[0]


def test_defaults_are_set_on_every_session(warehouse) -> None:
    from closeout.warehouse.db import connect

    with connect() as conn:
        assert _show(conn, "statement_timeout") == "30min"
        assert _show(conn, "lock_timeout") == "2min"
        assert _show(conn, "idle_in_transaction_session_timeout") == "30min"
        params = conn.info.get_parameters()
        assert (params["keepalives"], params["keepalives_idle"], params["keepalives_interval"],
                params["keepalives_count"]) == ("1", "60", "10", "6")  # fmt: skip


def test_extras_override_each_bound(warehouse, monkeypatch) -> None:
    from closeout.warehouse.db import connect

    set_warehouse_extra(monkeypatch, statement_timeout="5s", lock_timeout="750ms",
                        idle_in_transaction_session_timeout="0", keepalives_idle=17, keepalives_interval=3,
                        keepalives_count=2, options="-c work_mem=8MB")  # fmt: skip
    with connect() as conn:
        assert _show(conn, "statement_timeout") == "5s"
        assert _show(conn, "lock_timeout") == "750ms"
        assert _show(conn, "idle_in_transaction_session_timeout") == "0"
        assert _show(conn, "work_mem") == "8MB"  # the platform's own options are kept
        params = conn.info.get_parameters()
        assert (params["keepalives_idle"], params["keepalives_interval"], params["keepalives_count"]) == (
            "17", "3", "2")  # fmt: skip


def test_a_bad_duration_is_refused_naming_the_extra(warehouse, monkeypatch) -> None:
    from closeout.warehouse.db import connect

    set_warehouse_extra(monkeypatch, lock_timeout="2 minutes; DROP TABLE x")
    with pytest.raises(ValueError, match="lock_timeout"):
        connect()


def test_statement_timeout_ends_a_hung_statement(warehouse, monkeypatch) -> None:
    from closeout.warehouse.db import connect

    set_warehouse_extra(monkeypatch, statement_timeout="300ms")
    with connect() as conn:
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("SELECT pg_sleep(5)")
        assert time.monotonic() - started < 3


def test_lock_timeout_bounds_a_transaction_advisory_lock_wait(warehouse, monkeypatch) -> None:
    """Every pg_advisory_xact_lock in closeout is bounded by the session's lock_timeout."""
    from closeout.warehouse.db import connect

    set_warehouse_extra(monkeypatch, lock_timeout="400ms")
    with connect() as holder, connect() as waiter:
        holder.execute("SELECT pg_advisory_xact_lock(hashtextextended('closeout_payouts_plan', 8))")
        started = time.monotonic()
        with pytest.raises(psycopg.errors.LockNotAvailable):
            waiter.execute("SELECT pg_advisory_xact_lock(hashtextextended('closeout_payouts_plan', 8))")
        assert time.monotonic() - started < 3


def test_application_name_names_dag_task_and_run(warehouse, monkeypatch) -> None:
    from closeout.warehouse.db import connect

    task_context(monkeypatch, "closeout_sync_toggl", "window", "scheduled__2026-12-06T07:00:00+00:00")
    with connect() as conn:
        name = _show(conn, "application_name")
        assert name == "closeout:sync_toggl/window/scheduled__2026-12-06T07:00:00+00:00"[:63]
        assert len(name) <= 63
    monkeypatch.delenv("AIRFLOW_CTX_DAG_ID")
    with connect() as conn:
        assert _show(conn, "application_name") == "closeout"


def test_great_expectations_sessions_get_the_same_bounds_and_name(warehouse, monkeypatch) -> None:
    """The reconciliation hands GX a SQLAlchemy URL made from closeout's connection: its sessions are bounded too."""
    from closeout.recon.runner import _sqlalchemy_url
    from closeout.warehouse.db import connect
    from sqlalchemy import create_engine, text

    set_warehouse_extra(monkeypatch, statement_timeout="7min", lock_timeout="9s")
    task_context(monkeypatch, "closeout_reconcile", "reconcile", "manual__gx")
    with connect() as conn:
        engine = create_engine(_sqlalchemy_url(conn))
    try:
        with engine.connect() as gx:
            assert gx.execute(text("SHOW statement_timeout")).scalar() == "7min"
            assert gx.execute(text("SHOW lock_timeout")).scalar() == "9s"
            assert gx.execute(text("SHOW application_name")).scalar() == "closeout:reconcile/reconcile/manual__gx"
    finally:
        engine.dispose()
