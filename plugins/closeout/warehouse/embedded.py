"""The embedded warehouse: a real PostgreSQL started from Python (``pgserver``), no Docker.

Used by the demo, the tests and the benchmarks. When ``AIRFLOW_CONN_CLOSEOUT_WAREHOUSE`` is already
set, that Postgres is used and nothing embedded starts. The data folder lives in the git-ignored
``.closeout/`` of the checkout. ``pgserver`` serialises start-up across processes with a file lock
and reference-counts the processes using a data folder, so two processes sharing it neither start
two servers on one folder nor stop the server under each other's feet.

    python -m closeout.warehouse.embedded          # start (or reuse) and print the export line
    python -m closeout.warehouse.embedded --stop   # stop the server of this checkout
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from closeout.paths import state_dir

ENV_VAR = "AIRFLOW_CONN_CLOSEOUT_WAREHOUSE"
DEFAULT_DATABASE = "closeout"


@dataclass(frozen=True)
class Warehouse:
    conn_json: str
    embedded: bool
    data_dir: Path | None


def default_data_dir() -> Path:
    return state_dir() / "pgdata"


def ensure_warehouse(
    data_dir: Path | None = None,
    *,
    database: str = DEFAULT_DATABASE,
    keep_running: bool = False,
) -> Warehouse:
    """Make ``closeout_warehouse`` resolvable in this process and its children.

    ``keep_running`` leaves the server up after this process exits (for shells and compose-less
    local Airflow); otherwise the last process using it stops it on exit.
    """
    existing = os.environ.get(ENV_VAR)
    if existing:
        return Warehouse(conn_json=existing, embedded=False, data_dir=None)

    import pgserver  # only the demo/test toolchain has it; deployments never reach this line

    data_dir = (data_dir or default_data_dir()).resolve()
    # Create the folder ourselves: pgserver checks exists() then mkdir(exist_ok=False), so two processes starting
    # on a fresh checkout at once (a test run and the demo, two pytest workers) could both pass the check and one
    # fail. Its initdb runs under its own inter-process lock and only when PG_VERSION is missing.
    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir, cleanup_mode=None if keep_running else "stop")
    info = server.get_postmaster_info()
    host = str(info.socket_dir) if info.socket_dir else "127.0.0.1"
    _create_database(host, info.port or 5432, database)
    conn_json = json.dumps(
        {"conn_type": "postgres", "host": host, "port": info.port or 5432, "login": "postgres", "schema": database}
    )
    os.environ[ENV_VAR] = conn_json
    return Warehouse(conn_json=conn_json, embedded=True, data_dir=data_dir)


def _create_database(host: str, port: int, database: str) -> None:
    import psycopg
    from psycopg import errors, sql

    with psycopg.connect(host=host, port=port, user="postgres", dbname="postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if exists:
            return
        # another process may create it between our check and our CREATE
        with contextlib.suppress(errors.DuplicateDatabase, errors.UniqueViolation):
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


def stop_embedded(data_dir: Path | None = None) -> bool:
    """Stop the embedded server of this checkout, if one runs. Returns whether one was stopped."""
    import subprocess

    from pgserver._commands import pg_ctl

    data_dir = (data_dir or default_data_dir()).resolve()
    if not (data_dir / "postmaster.pid").exists():
        return False
    user = "pgserver" if os.geteuid() == 0 else None
    try:
        pg_ctl(["-w", "stop", "-m", "fast"], pgdata=data_dir, user=user)
    except subprocess.CalledProcessError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--stop", action="store_true", help="stop the embedded server")
    args = parser.parse_args(argv)
    if args.stop:
        print("stopped" if stop_embedded(args.data_dir) else "not running")
        return 0
    os.environ.pop(ENV_VAR, None)
    warehouse = ensure_warehouse(args.data_dir, keep_running=True)
    print(f"export {ENV_VAR}='{warehouse.conn_json}'")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
