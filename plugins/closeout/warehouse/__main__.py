"""``python -m closeout.warehouse migrate``: apply closeout's migrations as an explicit deployment step.

Compose's ``airflow-init`` (and any platform's release job) runs it once before the scheduler starts, so
tasks never race to create the schema. The warehouse comes from the ``closeout_warehouse`` Airflow connection
(e.g. ``AIRFLOW_CONN_CLOSEOUT_WAREHOUSE``), or ``--conn-id``; the SQL from the installed package.
"""

from __future__ import annotations

import argparse
import sys

from closeout.warehouse.db import WAREHOUSE_CONN_ID, connect
from closeout.warehouse.migrations import MigrationError, apply_migrations, discover, schema_status


def main(argv: list[str] | None = None) -> int:
    prog = "closeout" if sys.argv[0].endswith("closeout") else "python -m closeout.warehouse"  # console script or -m
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    migrate = commands.add_parser("migrate", help="apply the migrations that have not run yet")
    migrate.add_argument("--conn-id", default=WAREHOUSE_CONN_ID, help="Airflow connection id of the warehouse")
    status = commands.add_parser("status", help="compare the warehouse schema with this package (exit 1 if not equal)")
    status.add_argument("--conn-id", default=WAREHOUSE_CONN_ID, help="Airflow connection id of the warehouse")
    args = parser.parse_args(argv)
    # The explicit step itself never runs the connect-time schema check: it is what makes the schema current.
    with connect(args.conn_id, check_schema=False, app_name=f"closeout:{args.command}") as conn:
        if args.command == "status":
            missing, unknown = schema_status(conn)
            if unknown:
                print(f"closeout warehouse: newer than this package (unknown migrations {', '.join(unknown)}): "
                      "upgrade closeout")  # fmt: skip
            elif missing:
                print(f"closeout warehouse: older than this package (missing {', '.join(missing)}): "
                      "run `closeout migrate`")  # fmt: skip
            else:
                print(f"closeout warehouse: up to date ({len(discover())} migrations)")
            return 1 if missing or unknown else 0
        missing, unknown = schema_status(conn)
        if unknown:
            print(f"closeout warehouse: refusing to migrate: the warehouse has migrations this package does not know "
                  f"({', '.join(unknown)}); upgrade closeout", file=sys.stderr)  # fmt: skip
            return 2
        try:
            applied = apply_migrations(conn)
        except MigrationError as exc:
            print(f"closeout warehouse: {exc}", file=sys.stderr)
            return 2
    total = len(discover())
    done = ", ".join(applied) or "up to date"
    print(f"closeout warehouse: {len(applied)} migration(s) applied now of {total} known: {done}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
