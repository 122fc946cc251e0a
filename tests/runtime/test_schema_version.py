"""Migrations run as an explicit step (``python -m closeout.warehouse migrate``), and tasks refuse to run on a
schema older or newer than their code (auto-migrate only where ``CLOSEOUT_AUTO_MIGRATE`` allows it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import _admin_connect

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def empty_warehouse(warehouse_server: dict, monkeypatch: pytest.MonkeyPatch):
    """A database closeout never migrated, exposed as ``closeout_warehouse``."""
    name = f"closeout_empty_{os.getpid()}"
    with _admin_connect(warehouse_server) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    conn_json = json.dumps({**warehouse_server, "schema": name})
    monkeypatch.setenv("AIRFLOW_CONN_CLOSEOUT_WAREHOUSE", conn_json)
    from closeout.warehouse import migrations

    monkeypatch.setattr(migrations, "_checked", set())  # a fresh worker process
    yield conn_json
    with _admin_connect(warehouse_server) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _cli(*args: str, conn_json: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "AIRFLOW_CONN_CLOSEOUT_WAREHOUSE": conn_json, "CLOSEOUT_AUTO_MIGRATE": "false"}
    return subprocess.run([sys.executable, "-m", "closeout.warehouse", *args], env=env, capture_output=True,
                          text=True, timeout=180, cwd=ROOT)  # fmt: skip


def test_older_schema_is_refused_when_auto_migrate_is_off_then_the_explicit_step_fixes_it(
    empty_warehouse, monkeypatch
) -> None:
    from closeout.warehouse import migrations
    from closeout.warehouse.db import connect

    monkeypatch.setenv("CLOSEOUT_AUTO_MIGRATE", "false")
    with pytest.raises(migrations.SchemaMismatch, match=r"run `closeout migrate`"):
        connect()
    status = _cli("status", conn_json=empty_warehouse)
    assert status.returncode == 1 and "older than this package" in status.stdout

    done = _cli("migrate", conn_json=empty_warehouse)
    assert done.returncode == 0, done.stderr
    total = len(migrations.discover())
    assert f"{total} migration(s) applied now of {total} known" in done.stdout
    again = _cli("migrate", conn_json=empty_warehouse)
    assert "0 migration(s) applied now" in again.stdout and "up to date" in again.stdout
    assert _cli("status", conn_json=empty_warehouse).returncode == 0

    with connect() as conn:  # now current: the task's connection opens
        assert conn.execute("SELECT count(*) FROM closeout_data.schema_migrations").fetchone()[0] == total


def test_auto_migrate_on_migrates_an_older_schema_at_the_first_connect(empty_warehouse, monkeypatch) -> None:
    from closeout.warehouse import migrations
    from closeout.warehouse.db import connect

    monkeypatch.delenv("CLOSEOUT_AUTO_MIGRATE", raising=False)  # the demo's default
    with connect() as conn:
        missing, unknown = migrations.schema_status(conn)
    assert missing == [] and unknown == []


def test_newer_schema_is_refused_even_with_auto_migrate(warehouse, monkeypatch) -> None:
    from closeout.warehouse import migrations
    from closeout.warehouse.db import connect

    with connect(autocommit=True) as conn:
        conn.execute("INSERT INTO closeout_data.schema_migrations (version, name, checksum) "
                     "VALUES ('9999', 'from_the_future', 'x')")  # fmt: skip
    monkeypatch.setattr(migrations, "_checked", set())
    monkeypatch.setenv("CLOSEOUT_AUTO_MIGRATE", "true")
    with pytest.raises(migrations.SchemaMismatch, match=r"older than the warehouse \(v9999.*upgrade the image"):
        connect()
    conn_json = os.environ["AIRFLOW_CONN_CLOSEOUT_WAREHOUSE"]
    refused = _cli("migrate", conn_json=conn_json)
    assert refused.returncode == 2 and "9999" in refused.stderr


def test_the_check_runs_once_per_process_and_database(warehouse, monkeypatch) -> None:
    """Cheap: after the first connect the schema is not re-read by this process; a new worker process reads it."""
    from closeout.warehouse import migrations
    from closeout.warehouse.db import connect

    monkeypatch.setattr(migrations, "_checked", set())
    with connect(autocommit=True) as conn:
        conn.execute("INSERT INTO closeout_data.schema_migrations (version, name, checksum) "
                     "VALUES ('9998', 'later', 'x')")  # fmt: skip
    with connect():  # checked before the insert: not checked again
        pass
    monkeypatch.setattr(migrations, "_checked", set())  # a new process
    with pytest.raises(migrations.SchemaMismatch, match="v9998"):
        connect()
