"""``python -m closeout.warehouse migrate``: apply closeout's migrations as an explicit deployment step.

Compose's ``airflow-init`` (and any platform's release job) runs it once before the scheduler starts, so
tasks never race to create the schema. The warehouse comes from the ``closeout_warehouse`` Airflow connection
(e.g. ``AIRFLOW_CONN_CLOSEOUT_WAREHOUSE``), or ``--conn-id``; the SQL from the installed package.
"""

from __future__ import annotations

import argparse
import sys

from closeout.warehouse.db import WAREHOUSE_CONN_ID, connect
from closeout.warehouse.migrations import apply_migrations, discover


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m closeout.warehouse", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    migrate = commands.add_parser("migrate", help="apply the migrations that have not run yet")
    migrate.add_argument("--conn-id", default=WAREHOUSE_CONN_ID, help="Airflow connection id of the warehouse")
    args = parser.parse_args(argv)
    if args.command == "migrate":
        with connect(args.conn_id) as conn:
            applied = apply_migrations(conn)
        total = len(discover())
        done = ", ".join(applied) or "up to date"
        print(f"closeout warehouse: {len(applied)} migration(s) applied now of {total} known: {done}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
