"""Warehouse migrations and the invariants 0001 puts into the schema itself.

Migration tests run against an empty database of their own (the ``warehouse`` fixture is already
migrated); schema tests use the ``warehouse`` fixture.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from closeout.warehouse.migrations import MigrationError, apply_migrations, discover
from conftest import ROOT, _admin_connect

MIGRATIONS = ROOT / "include" / "sql" / "migrations"
_counter = itertools.count(1)


@pytest.fixture
def empty_db(warehouse_server: dict) -> Iterator[psycopg.Connection]:
    """A connection to a brand-new, unmigrated database, dropped afterwards."""
    name = f"closeout_empty_{os.getpid()}_{next(_counter)}"
    with _admin_connect(warehouse_server) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    conn = psycopg.connect(
        host=warehouse_server.get("host"),
        port=warehouse_server.get("port") or 5432,
        user=warehouse_server.get("login"),
        password=warehouse_server.get("password") or None,
        dbname=name,
        autocommit=True,
    )
    try:
        yield conn
    finally:
        conn.close()
        with _admin_connect(warehouse_server) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def recorded(conn: psycopg.Connection) -> dict[str, tuple[str, str]]:
    rows = conn.execute("SELECT version, name, checksum FROM closeout_data.schema_migrations").fetchall()
    return {version: (name, checksum) for version, name, checksum in rows}


def table_exists(conn: psycopg.Connection, qualified: str) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (qualified,)).fetchone()[0]


def copy_0001(folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    return Path(shutil.copy(MIGRATIONS / "0001_capture.sql", folder / "0001_capture.sql"))


# -- migrations ---------------------------------------------------------------------------------------
def test_fresh_database_gets_every_shipped_migration_recorded_with_its_checksum(empty_db):
    shipped = discover()
    assert apply_migrations(empty_db) == [m.version for m in shipped]
    assert [m.version for m in shipped][:2] == ["0001", "0002"]
    assert recorded(empty_db) == {m.version: (m.name, m.checksum) for m in shipped}
    assert table_exists(empty_db, "closeout_data.time_entry_versions")
    assert table_exists(empty_db, "closeout.time_entries")


def test_second_run_applies_nothing_and_changes_nothing(empty_db):
    apply_migrations(empty_db)
    before = empty_db.execute("SELECT version, checksum, applied_at FROM closeout_data.schema_migrations").fetchall()
    currencies = empty_db.execute("SELECT count(*) FROM closeout_data.currencies").fetchone()[0]

    assert apply_migrations(empty_db) == []

    after = empty_db.execute("SELECT version, checksum, applied_at FROM closeout_data.schema_migrations").fetchall()
    assert after == before
    assert empty_db.execute("SELECT count(*) FROM closeout_data.currencies").fetchone()[0] == currencies


def test_apply_leaves_a_non_autocommit_connection_as_it_found_it(empty_db):
    empty_db.autocommit = False
    apply_migrations(empty_db)
    assert empty_db.autocommit is False
    empty_db.rollback()


@pytest.mark.parametrize(
    "bad_sql",
    [
        pytest.param("CREATE TABLE closeout_data.half_done (x int);\nSELEC broken syntax;\n", id="syntax-error"),
        # a runtime error: the CREATE really executes before the failure, so only a rollback removes it
        pytest.param(
            "CREATE TABLE closeout_data.half_done (x int);\nINSERT INTO closeout_data.half_done VALUES (1 / 0);\n",
            id="runtime-error",
        ),
    ],
)
def test_failing_migration_rolls_back_whole_and_keeps_earlier_ones(empty_db, tmp_path, bad_sql):
    folder = tmp_path / "migrations"
    copy_0001(folder)
    (folder / "0002_bad.sql").write_text(bad_sql, encoding="utf-8")

    with pytest.raises(MigrationError, match="0002_bad"):
        apply_migrations(empty_db, folder)

    assert not table_exists(empty_db, "closeout_data.half_done")
    assert set(recorded(empty_db)) == {"0001"}
    assert table_exists(empty_db, "closeout_data.sync_runs")
    # the advisory lock was released: another session can take it at once
    locks = empty_db.execute(
        "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
        "WHERE l.locktype = 'advisory' AND d.datname = current_database()"
    ).fetchone()[0]
    assert locks == 0

    # fixed, it is retried and applied on the next run
    (folder / "0002_bad.sql").write_text("CREATE TABLE closeout_data.half_done (x int);\n", encoding="utf-8")
    assert apply_migrations(empty_db, folder) == ["0002"]
    assert table_exists(empty_db, "closeout_data.half_done")
    assert set(recorded(empty_db)) == {"0001", "0002"}


def test_editing_an_applied_migration_is_refused(empty_db, tmp_path):
    folder = tmp_path / "migrations"
    path = copy_0001(folder)
    assert apply_migrations(empty_db, folder) == ["0001"]

    path.write_text(path.read_text(encoding="utf-8") + "\n-- a harmless looking edit\n", encoding="utf-8")
    with pytest.raises(MigrationError, match="changed"):
        apply_migrations(empty_db, folder)


@pytest.mark.parametrize(
    "names",
    [
        pytest.param(["1_short.sql"], id="short-version"),
        pytest.param(["0002_Upper.sql"], id="upper-case"),
        pytest.param(["0002_dash-name.sql"], id="dash"),
        pytest.param(["0002.sql"], id="no-name"),
        pytest.param(["0002_a.sql", "0002_b.sql"], id="duplicate-version"),
    ],
)
def test_bad_migration_file_names_are_refused(empty_db, tmp_path, names):
    folder = tmp_path / "migrations"
    copy_0001(folder)
    for name in names:
        (folder / name).write_text("SELECT 1;\n", encoding="utf-8")

    with pytest.raises(MigrationError):
        discover(folder)
    with pytest.raises(MigrationError):
        apply_migrations(empty_db, folder)
    # refused before anything ran
    assert not table_exists(empty_db, "closeout_data.sync_runs")


# -- public contract views ------------------------------------------------------------------------------
def view_columns(warehouse, view: str) -> set[str]:
    rows = warehouse.rows(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'closeout' AND table_name = %s",
        (view,),
    )
    return {r[0] for r in rows}


def test_time_entries_view_has_the_contract_columns(warehouse):
    required = {
        "source", "source_id", "client_key", "project_key", "task_key", "user_key", "spent_date", "hours",
        "billable_hours", "billable", "approved", "billable_rate", "currency", "amount_minor",
        "source_updated_at", "deleted_at", "version",
    }  # fmt: skip
    assert required <= view_columns(warehouse, "time_entries")
    kind = warehouse.scalar(
        "SELECT table_type FROM information_schema.tables WHERE table_schema = 'closeout' AND table_name = %s",
        ("time_entries",),
    )
    assert kind == "VIEW"


def test_time_entry_versions_view_names_the_sync_run(warehouse):
    columns = view_columns(warehouse, "time_entry_versions")
    assert {"source", "source_id", "version", "sync_run_id"} <= columns


def test_sync_runs_view_has_the_contract_columns(warehouse):
    required = {"source", "started_at", "finished_at", "requests", "records", "cursor", "status"}
    assert required <= view_columns(warehouse, "sync_runs")


# -- invariants in the schema -----------------------------------------------------------------------------
def _insert_version(conn: psycopg.Connection) -> int:
    (run_id,) = conn.execute(
        "INSERT INTO closeout_data.sync_runs (source, mode, status) VALUES ('harvest', 'full', 'running') "
        "RETURNING sync_run_id"
    ).fetchone()
    conn.execute(
        """INSERT INTO closeout_data.time_entry_versions (
               source, source_id, version, sync_run_id, change,
               client_key, project_key, task_key, user_key,
               client_source_id, project_source_id, task_source_id, user_source_id,
               spent_date, hours, rounded_hours, billable_hours, billable, approved, billed_in_source,
               is_locked, is_running, billable_rate, currency, amount_minor, source_updated_at)
           VALUES ('harvest', '1', 1, %s, 'created',
                   'harvest:10', 'harvest:20', 'harvest:30', 'harvest:40', '10', '20', '30', '40',
                   %s, 1.5, 1.5, 1.5, true, false, false, false, false, 100, 'USD', 15000, %s)""",
        (run_id, date(2026, 1, 5), datetime(2026, 1, 5, 12, tzinfo=UTC)),
    )
    return run_id


def test_time_entry_versions_refuse_update_and_delete(warehouse):
    from closeout.warehouse.db import connect

    with connect(autocommit=True) as conn:
        _insert_version(conn)
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute("UPDATE closeout_data.time_entry_versions SET hours = 2 WHERE source_id = '1'")
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute("DELETE FROM closeout_data.time_entry_versions WHERE source_id = '1'")
        assert conn.execute("SELECT hours FROM closeout_data.time_entry_versions").fetchall() == [(Decimal("1.5"),)]


def test_one_running_sync_per_source(warehouse):
    from closeout.warehouse.db import connect

    insert = "INSERT INTO closeout_data.sync_runs (source, mode, status) VALUES (%s, 'incremental', %s)"
    with connect(autocommit=True) as conn:
        conn.execute(insert, ("harvest", "running"))
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(insert, ("harvest", "running"))
        # other trackers and finished runs are not constrained
        conn.execute(insert, ("toggl", "running"))
        conn.execute(insert, ("harvest", "succeeded"))
        conn.execute(insert, ("harvest", "failed"))
        running = conn.execute("SELECT count(*) FROM closeout.sync_runs WHERE status = 'running'").fetchone()[0]
    assert running == 2


def test_currency_exponents(warehouse):
    exponents = dict(warehouse.rows("SELECT code, exponent FROM closeout_data.currencies"))
    assert {c: exponents.get(c) for c in ("JPY", "KWD", "USD", "EUR")} == {"JPY": 0, "KWD": 3, "USD": 2, "EUR": 2}
    assert len(exponents) >= 50
