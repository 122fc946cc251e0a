"""Versioned SQL migrations under include/sql/migrations, applied idempotently.

Each file ``NNNN_name.sql`` runs once, in its own transaction together with the row that records it,
so a failing migration rolls back whole and is retried next time. A session advisory lock keeps two
processes from migrating at once. A recorded migration whose file changed afterwards is an error:
history in a finance warehouse is not rewritten by editing old migrations.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

from closeout.paths import sql_dir

_LOCK_KEY = 0x636C6F73  # "clos": one advisory lock id for all closeout migrations
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(RuntimeError):
    pass


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
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            return _apply_locked(conn, migrations)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
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
    from closeout.warehouse.db import connect

    with connect(conn_id) as conn:
        return apply_migrations(conn)
