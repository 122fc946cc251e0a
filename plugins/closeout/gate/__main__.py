"""Finance's command line for payout holds (uses the ``closeout_warehouse`` connection).

python -m closeout.gate list
python -m closeout.gate release --hold-id 7 --by ana@finance --why "AR difference explained: late Xero import"
"""

from __future__ import annotations

import argparse
import sys

from closeout.gate.holds import HoldError, open_holds, release_hold


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m closeout.gate", description="Review and release payout holds.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="show the open payout holds")
    release = commands.add_parser("release", help="release an open hold, recording who and why")
    release.add_argument("--hold-id", type=int, required=True)
    release.add_argument("--by", required=True, help="who releases it (an e-mail or name)")
    release.add_argument("--why", required=True, help="why payouts are safe again")
    args = parser.parse_args(argv)

    from closeout.warehouse.db import connect

    with connect() as conn:
        if args.command == "list":
            holds = open_holds(conn)
            for hold in holds:
                print(f"{hold.hold_id}\t{hold.opened_at:%Y-%m-%d %H:%M:%S %Z}\t{hold.cause_key}\t{hold.reason}")
            print(f"{len(holds)} open payout hold(s)")
            return 0
        try:
            hold = release_hold(conn, args.hold_id, by=args.by, why=args.why)
        except HoldError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"released payout hold {hold.hold_id} at {hold.released_at:%Y-%m-%d %H:%M:%S %Z} by {hold.released_by}")
        remaining = open_holds(conn)
        if remaining:
            print(
                f"payouts stay blocked: {len(remaining)} other hold(s) open: "
                + ", ".join(str(h.hold_id) for h in remaining)
            )
        return 0


if __name__ == "__main__":
    sys.exit(main())
