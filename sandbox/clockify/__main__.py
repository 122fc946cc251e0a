"""CLI: generate a workspace, serve it, print ``CLOCKIFY_SANDBOX_URL=...`` and run until SIGTERM/SIGINT.

Example: ``python -m sandbox.clockify --entries 1000000 --seed 7 --port 8766 --limit none``. Point a client at
``$CLOCKIFY_SANDBOX_URL/api/v1`` (REST) and ``$CLOCKIFY_SANDBOX_URL/reports/v1`` (reports).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date

from sandbox.clockify.data import generate_dataset
from sandbox.clockify.server import ClockifySandbox
from sandbox.serving import serve_until, stop_on_signals


def main(argv: list[str] | None = None) -> int:
    """Run the sandbox in the foreground; exit code 0 on a signal-initiated shutdown."""
    parser = argparse.ArgumentParser(prog="python -m sandbox.clockify", description=__doc__)
    parser.add_argument("--entries", type=int, default=10_000, help="number of time entries to generate")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--anchor", type=date.fromisoformat, default=None, help="last day with entries, YYYY-MM-DD")
    parser.add_argument("--days", type=int, default=365, help="how many days the entries span")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--api-key", default="sandbox-api-key")
    parser.add_argument("--limit", choices=("paid", "free", "none"), default="paid", help="rate-limit plan")
    args = parser.parse_args(argv)

    stopping = stop_on_signals()

    started = time.perf_counter()
    dataset = generate_dataset(args.entries, seed=args.seed, anchor=args.anchor, days=args.days)
    sandbox = ClockifySandbox(dataset, api_key=args.api_key, limit=None if args.limit == "none" else args.limit)
    workspace_id = dataset.workspace["id"]
    del dataset
    url = sandbox.start(args.host, args.port)
    print(
        f"generated {args.entries} entries in {time.perf_counter() - started:.1f}s; workspace {workspace_id}",
        file=sys.stderr,
        flush=True,
    )
    print(f"CLOCKIFY_SANDBOX_URL={url}", flush=True)
    return serve_until(stopping, sandbox.stop)


if __name__ == "__main__":
    sys.exit(main())
