"""Ops' command line for month-end closes (uses the ``closeout_warehouse`` connection).

python -m closeout.close list
python -m closeout.close abandon --close-run-id 12 --by ops@example.com --why "worker host lost mid-publish"

A close whose worker died stays 'running' in the warehouse and, by design, blocks every other close (closes never
interleave, even across Airflow deployments). Abandoning it is a recorded decision - who and why go into the close
run's error - after which the period can be closed again: each step resumes from what it recorded.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m closeout.close", description="Review, unblock closes.")
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="show recent closes (closeout.period_closes)")
    listing.add_argument("--limit", type=int, default=20)
    abandon = commands.add_parser("abandon", help="fail a close stuck 'running' because its worker died")
    abandon.add_argument("--close-run-id", type=int, required=True)
    abandon.add_argument("--by", required=True, help="who decides it (an e-mail or name)")
    abandon.add_argument("--why", required=True, help="why the close is known to be dead")
    args = parser.parse_args(argv)

    from closeout.close.runs import abandon as abandon_run
    from closeout.warehouse.db import connect

    with connect() as conn:
        if args.command == "list":
            rows = conn.execute(
                """SELECT close_run_id, period, status, dry_run, started_at, finished_at, coalesce(report_url, '')
                   FROM closeout.period_closes ORDER BY close_run_id DESC LIMIT %s""",
                (args.limit,),
            ).fetchall()
            for run_id, period, status, dry_run, started, finished, report in rows:
                kind = "dry run" if dry_run else "close"
                ended = f"{finished:%Y-%m-%d %H:%M %Z}" if finished else "-"
                print(f"{run_id}\t{period}\t{kind}\t{status}\t{started:%Y-%m-%d %H:%M %Z}\t{ended}\t{report}")
            print(f"{len(rows)} close run(s)")
            return 0
        if not args.by.strip() or not args.why.strip():
            print("error: --by and --why must say who and why", file=sys.stderr)
            return 2
        if not abandon_run(conn, args.close_run_id, f"{args.why.strip()} (by {args.by.strip()})"):
            print(f"error: close run {args.close_run_id} is not running; nothing changed", file=sys.stderr)
            return 2
        print(f"close run {args.close_run_id} marked failed; the period can be closed again")
        return 0


if __name__ == "__main__":
    sys.exit(main())
