"""Evidence packs from the command line (docs/evidence.md).

python -m closeout.evidence pack --invoice INV-2026-11-0001
python -m closeout.evidence pack --period 2026-11
python -m closeout.evidence incident --hold-id 7

Each prints where the pack is (its index.json) and a link a person can open.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m closeout.evidence", description="Write evidence packs.")
    parser.add_argument("--conn-id", default="closeout_warehouse", help="the warehouse connection")
    commands = parser.add_subparsers(dest="command", required=True)
    pack = commands.add_parser("pack", help="an invoice's or a period's evidence pack")
    which = pack.add_mutually_exclusive_group(required=True)
    which.add_argument("--invoice", help="a closeout invoice id")
    which.add_argument("--period", help="an accounting period, YYYY-MM")
    incident = commands.add_parser("incident", help="a payout hold's incident pack (needed before its release)")
    incident.add_argument("--hold-id", type=int, required=True)
    args = parser.parse_args(argv)

    from closeout.evidence.incident import IncidentPackMissing, build_incident_pack
    from closeout.evidence.packs import EvidenceError, invoice_pack, period_pack
    from closeout.warehouse.db import connect

    try:
        with connect(args.conn_id) as conn:
            if args.command == "incident":
                written = build_incident_pack(conn, args.hold_id)
            elif args.invoice:
                written = invoice_pack(conn, args.invoice)
            else:
                written = period_pack(conn, args.period)
    except (EvidenceError, IncidentPackMissing) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{written.kind} evidence pack written: {written.index}")
    try:
        link = written.link
    except Exception as exc:  # a store that gives no links: the location above is still right
        link = None
        print(f"(no link: {exc})", file=sys.stderr)
    if link and link != written.index:
        print(f"open: {link}")
    for file in written.files:
        rows = "" if file["rows"] is None else f"{file['rows']} rows, "
        print(f"  {file['name']}: {rows}sha256 {file['sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
