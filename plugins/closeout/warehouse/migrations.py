"""Versioned SQL migrations under include/sql/migrations, applied idempotently.

Each file ``NNNN_name.sql`` runs once, in its own transaction together with the row that records it,
so a failing migration rolls back whole and is retried next time. A session advisory lock keeps two
processes from migrating at once. A recorded migration whose file changed afterwards is an error:
history in a finance warehouse is not rewritten by editing old migrations.

Migrating is an explicit step (``python -m closeout.warehouse migrate``; compose's init runs it). Tasks check the
schema once per process at connect time (``ensure_schema``): a schema older than the code is refused with "run
`closeout migrate`" unless ``CLOSEOUT_AUTO_MIGRATE`` is on (the default, for the embedded demo and tests; switch
it off in production so only the init step changes the schema); a schema newer than the code is always refused:
the worker's image is older than the warehouse.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import psycopg

from closeout.paths import sql_dir

_LOCK_KEY = 0x636C6F73  # "clos": one advisory lock id for all closeout migrations
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


AUTO_MIGRATE_ENV = "CLOSEOUT_AUTO_MIGRATE"
MIGRATION_LOCK_WAIT_SECONDS = 600.0  # another process migrating: wait this long, then fail (retryable)


class MigrationError(RuntimeError):
    pass


class SchemaMismatch(RuntimeError):
    """The warehouse schema and this worker's closeout disagree; raised before a task touches any data."""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path
    checksum: str

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")


def discover(folder: Path | None = None) -> list[Migration]:
    folder = folder or sql_dir() / "migrations"
    found: list[Migration] = []
    for path in sorted(folder.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_lower_snake.sql")
        checksum = hashlib.sha256(path.read_bytes()).hexdigest()
        found.append(Migration(match.group(1), match.group(2), path, checksum))
    versions = [m.version for m in found]
    if len(versions) != len(set(versions)):
        raise MigrationError(f"duplicate migration versions in {folder}")
    return found


def apply_migrations(conn: psycopg.Connection, folder: Path | None = None) -> list[str]:
    """Apply what has not run yet; return the versions applied now (empty when up to date)."""
    migrations = discover(folder)
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        conn.commit()
    previous_autocommit = conn.autocommit
    conn.autocommit = True
    try:
        from closeout import locks

        # A migration may rewrite big tables: no statement bound, but still the session's lock_timeout, so a
        # DDL never queues every reader behind it for long (it fails, rolls back, and is run again).
        conn.execute("SET statement_timeout = 0")
        locks.acquire(conn, _LOCK_KEY, name="closeout.migrations", wait=MIGRATION_LOCK_WAIT_SECONDS)
        try:
            return _apply_locked(conn, migrations)
        finally:
            locks.release(conn, _LOCK_KEY)
            conn.execute("RESET statement_timeout")
    finally:
        conn.autocommit = previous_autocommit


def _apply_locked(conn: psycopg.Connection, migrations: list[Migration]) -> list[str]:
    conn.execute("CREATE SCHEMA IF NOT EXISTS closeout_data")
    conn.execute(
        """CREATE TABLE IF NOT EXISTS closeout_data.schema_migrations (
               version    text PRIMARY KEY,
               name       text NOT NULL,
               checksum   text NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now())"""
    )
    recorded = dict(conn.execute("SELECT version, checksum FROM closeout_data.schema_migrations").fetchall())
    applied: list[str] = []
    for migration in migrations:
        if migration.version in recorded:
            if recorded[migration.version] != migration.checksum:
                raise MigrationError(
                    f"migration {migration.version}_{migration.name} changed after it was applied; "
                    "add a new migration instead of editing an applied one"
                )
            continue
        try:
            with conn.transaction():
                conn.execute(migration.sql.encode())  # no parameters: multi-statement allowed
                conn.execute(
                    "INSERT INTO closeout_data.schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, migration.checksum),
                )
        except psycopg.Error as exc:
            raise MigrationError(
                f"migration {migration.version}_{migration.name} failed and was rolled back: {exc}"
            ) from exc
        applied.append(migration.version)
    return applied


def migrate(conn_id: str = "closeout_warehouse") -> list[str]:
    """The explicit migration step: apply what has not run yet (as the connection's login)."""
    from closeout.warehouse.db import connect

    with connect(conn_id, check_schema=False, app_name="closeout:migrate") as conn:
        applied = apply_migrations(conn)
        _checked.add(_database_key(conn))
        return applied


# -- schema check at connect time -------------------------------------------------------------------------------
_checked: set[tuple[str, str, str]] = set()
_checked_lock = threading.Lock()


def auto_migrate() -> bool:
    """``CLOSEOUT_AUTO_MIGRATE`` (default on: the embedded demo and the tests migrate themselves)."""
    value = os.environ.get(AUTO_MIGRATE_ENV, "true").strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{AUTO_MIGRATE_ENV}={value!r}: true or false")


def _database_key(conn: psycopg.Connection) -> tuple[str, str, str]:
    return (conn.info.host, str(conn.info.port), conn.info.dbname)


def applied_versions(conn: psycopg.Connection) -> set[str]:
    """Versions recorded in ``schema_migrations`` (empty when the warehouse was never migrated)."""
    (exists,) = conn.execute("SELECT to_regclass('closeout_data.schema_migrations') IS NOT NULL").fetchone()
    if not exists:
        return set()
    return {v for (v,) in conn.execute("SELECT version FROM closeout_data.schema_migrations").fetchall()}


def schema_status(conn: psycopg.Connection, folder: Path | None = None) -> tuple[list[str], list[str]]:
    """(versions this package has that the warehouse lacks, versions the warehouse has that this package lacks)."""
    known = {m.version for m in discover(folder)}
    applied = applied_versions(conn)
    return sorted(known - applied), sorted(applied - known)


def ensure_schema(conn: psycopg.Connection, folder: Path | None = None) -> None:
    """Refuse to run on a schema older or newer than this code; cheap (cached per process and database).

    Older: migrate when ``CLOSEOUT_AUTO_MIGRATE`` is on, else refuse with "run `closeout migrate`". Newer: always
    refuse (a worker image older than the warehouse would write with yesterday's assumptions)."""
    key = _database_key(conn)
    if key in _checked:
        return
    with _checked_lock:
        if key in _checked:
            return
        was_idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        missing, unknown = schema_status(conn, folder)
        if was_idle and not conn.autocommit:
            conn.rollback()  # leave the caller a connection without an open transaction
        if unknown:
            known = discover(folder)
            raise SchemaMismatch(
                f"this worker's closeout is older than the warehouse (v{max(unknown)}; this code knows up to "
                f"v{known[-1].version if known else 'none'}): upgrade the image"
            )
        if missing:
            if not auto_migrate():
                raise SchemaMismatch(
                    f"the warehouse schema is older than this code (missing migrations {', '.join(missing)}): "
                    f"run `closeout migrate` (python -m closeout.warehouse migrate) before the DAGs "
                    f"({AUTO_MIGRATE_ENV} is off)"
                )
            apply_migrations(conn, folder)
        _checked.add(key)
