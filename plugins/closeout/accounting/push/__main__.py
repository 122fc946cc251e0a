"""``python -m closeout.accounting.push --system quickbooks|xero``: one push run from a shell (the platform team's
manual run, and the tests' killed worker); prints the run's summary as JSON."""

from __future__ import annotations

import argparse
import json

from closeout.accounting.push.tasks import push_books


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m closeout.accounting.push", description=__doc__)
    parser.add_argument("--system", required=True, choices=("quickbooks", "xero"))
    args = parser.parse_args(argv)
    print(json.dumps(push_books(args.system), sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
