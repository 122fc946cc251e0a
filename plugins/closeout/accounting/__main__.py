"""Finance's and ops' command line for the links between closeout clients and accounting-system customers.

python -m closeout.accounting links review
CLOSEOUT_AIRFLOW_TOKEN=<your Airflow token> \
    python -m closeout.accounting links resolve --review-id 7 --remote-id 58 [--why "same company, old name"]
CLOSEOUT_AIRFLOW_TOKEN=<your Airflow token> \
    python -m closeout.accounting links resolve --review-id 7 --create [--why "a different company"]
python -m closeout.accounting links sync --system quickbooks|xero [--conn-id quickbooks_default]

``review`` lists the clients waiting for finance (ambiguous or near matches, with the candidates read from the
accounting system). ``resolve`` records finance's decision in closeout.decisions: who decides is not typed in, the
Airflow API server identifies the person from their own token (``closeout.gate.identity``) and they must be in the
finance group; the warehouse login (``--conn-id``) must be in ``closeout_finance``. ``--remote-id`` links the client
to that customer at once; ``--create`` lets the next ``sync`` create a new customer for it (through the outbox, once).
``sync`` runs the matching and linking for one system (what the accounting sync does before pushing invoices).
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m closeout.accounting",
                                     description="Links between closeout clients and accounting-system customers.")
    parser.add_argument("--conn-id", default="closeout_warehouse", help="the warehouse connection")
    areas = parser.add_subparsers(dest="area", required=True)
    links = areas.add_parser("links", help="customer links and the reviews finance resolves")
    commands = links.add_subparsers(dest="command", required=True)
    commands.add_parser("review", help="show the clients waiting for finance")
    resolve = commands.add_parser("resolve", help="link a reviewed client to a customer, or have one created")
    resolve.add_argument("--review-id", type=int, required=True)
    choice = resolve.add_mutually_exclusive_group(required=True)
    choice.add_argument("--remote-id", help="the QuickBooks customer Id / Xero ContactID this client is")
    choice.add_argument("--create", action="store_true", help="this client is none of them: create a new customer")
    resolve.add_argument("--why", default="", help="why (kept with the decision)")
    sync = commands.add_parser("sync", help="match, link, create and update customers for one system")
    sync.add_argument("--system", choices=("quickbooks", "xero"), required=True)
    sync.add_argument("--accounting-conn-id", help="the QuickBooks / Xero connection (default <system>_default)")
    args = parser.parse_args(argv)

    if args.command == "sync":
        from closeout.accounting.links import customers_for, link_customers

        run = link_customers(customers_for(args.system, args.accounting_conn_id, warehouse_conn_id=args.conn_id),
                             warehouse_conn_id=args.conn_id)  # fmt: skip
        print(json.dumps({"system": run.system, "company_id": run.company_id, "linked": run.linked,
                          "created": run.created, "reviews": run.reviews, "updated": run.updated,
                          "failed": run.failed}, sort_keys=True))  # fmt: skip
        return 0

    import psycopg

    from closeout.paths import load_sql
    from closeout.warehouse.db import connect

    with connect(args.conn_id) as conn:
        if args.command == "review":
            rows = conn.execute(load_sql("accounting_api/reviews_list.sql")).fetchall()
            for review_id, system, company, ref, reason, detail, candidates, state, opened_at in rows:
                print(f"{review_id}\t{system}:{company}\tclient {ref}\t{state}\t{reason}: {detail}\t"
                      f"opened {opened_at:%Y-%m-%d %H:%M:%S %Z}")  # fmt: skip
                for candidate in candidates:
                    print(f"\t\tcandidate {candidate.get('id')}\t{candidate.get('name')}\t"
                          f"{candidate.get('email') or '-'}\t{candidate.get('why')}")  # fmt: skip
            print(f"{len(rows)} accounting link review(s) waiting")
            return 0

        from closeout.gate.identity import TOKEN_ENV, IdentityError, api_url, finance_person

        try:
            url = api_url()
            person = finance_person(os.environ.get(TOKEN_ENV, ""), url)
            decision_id = conn.execute(load_sql("accounting_api/reviews_resolve.sql"), {
                "review_id": args.review_id, "external_id": None if args.create else args.remote_id,
                "decided_by": person, "reason": args.why,
                "ref": json.dumps({"identified_by": f"{url}/ui/auth/me"})}).fetchone()[0]  # fmt: skip
            conn.commit()
        except IdentityError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except psycopg.Error as exc:
            conn.rollback()
            message = exc.diag.message_primary if exc.diag and exc.diag.message_primary else str(exc)
            print(f"error: {message}", file=sys.stderr)
            return 2
        outcome = "will be created by the next sync" if args.create else f"linked to {args.remote_id}"
        print(f"review {args.review_id}: {outcome}; decision {decision_id} by {person}")
        return 0


if __name__ == "__main__":
    sys.exit(main())
