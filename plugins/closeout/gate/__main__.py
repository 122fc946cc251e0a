"""Finance's command line for payout holds.

python -m closeout.gate list
CLOSEOUT_AIRFLOW_TOKEN=<your Airflow token> \
    python -m closeout.gate release --hold-id 7 --why "AR difference explained: late Xero import"

Who releases is not typed in: the Airflow API server identifies the person from their own token
(``closeout.gate.identity``), who must be in the finance group and not the one who caused the hold. The
warehouse login used (the ``closeout_warehouse`` connection, or ``--conn-id``) must be in ``closeout_finance``:
the pipeline's login cannot release a hold.
"""

from __future__ import annotations

import argparse
import os
import sys

from closeout.gate.holds import HoldError, open_holds, release_hold
from closeout.gate.identity import TOKEN_ENV, IdentityError, api_url, finance_person


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m closeout.gate", description="Review and release payout holds.")
    parser.add_argument("--conn-id", default="closeout_warehouse", help="the warehouse connection (a finance login)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="show the open payout holds")
    release = commands.add_parser("release", help="release an open hold, recording who (from Airflow) and why")
    release.add_argument("--hold-id", type=int, required=True)
    release.add_argument("--why", required=True, help="why payouts are safe again")
    release.add_argument("--by", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    from closeout.warehouse.db import connect

    with connect(args.conn_id) as conn:
        if args.command == "list":
            holds = open_holds(conn)
            for hold in holds:
                print(f"{hold.hold_id}\t{hold.opened_at:%Y-%m-%d %H:%M:%S %Z}\t{hold.cause_key}\t{hold.reason}")
            print(f"{len(holds)} open payout hold(s)")
            return 0
        if args.by:
            print(f"error: --by is not accepted: who releases comes from your Airflow token in {TOKEN_ENV}",
                  file=sys.stderr)  # fmt: skip
            return 2
        from closeout.evidence.incident import incident_pack_problem

        missing = incident_pack_problem(conn, args.hold_id)  # no release without the hold's incident pack
        conn.rollback()
        if missing:
            print(f"error: {missing}", file=sys.stderr)
            return 2
        try:
            url = api_url()
            person = finance_person(os.environ.get(TOKEN_ENV, ""), url)
            hold = release_hold(conn, args.hold_id, by=person, why=args.why,
                                ref={"identified_by": f"{url}/ui/auth/me"})  # fmt: skip
        except (HoldError, IdentityError) as exc:
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
