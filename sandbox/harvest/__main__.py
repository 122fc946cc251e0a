"""CLI: generate a dataset, serve it, print ``HARVEST_SANDBOX_URL=...`` and run until SIGTERM/SIGINT.

Example: ``python -m sandbox.harvest --entries 1000000 --seed 7 --port 8765 --no-rate-limit``
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date

from sandbox.harvest.data import generate_dataset
from sandbox.harvest.server import HarvestSandbox
from sandbox.serving import serve_until, stop_on_signals


def _rate_limit(text: str) -> tuple[int, float]:
    try:
        requests, seconds = text.split("/", 1)
        return int(requests), float(seconds)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected REQUESTS/SECONDS like 100/15, got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    """Run the sandbox in the foreground; exit code 0 on a signal-initiated shutdown."""
    parser = argparse.ArgumentParser(prog="python -m sandbox.harvest", description=__doc__)
    parser.add_argument("--entries", type=int, default=10_000, help="number of time entries to generate")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--anchor", type=date.fromisoformat, default=None, help="last spent date, YYYY-MM-DD")
    parser.add_argument("--days", type=int, default=365, help="how many days the entries span")
    parser.add_argument("--clients", type=int, default=None, help="number of clients (default: derived)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--token", default="sandbox-token")
    parser.add_argument("--account-id", default="123456")
    limits = parser.add_mutually_exclusive_group()
    limits.add_argument("--rate-limit", type=_rate_limit, default=(100, 15.0), help="REQUESTS/SECONDS")
    limits.add_argument("--no-rate-limit", action="store_true")
    args = parser.parse_args(argv)

    stopping = stop_on_signals()

    started = time.perf_counter()
    dataset = generate_dataset(args.entries, seed=args.seed, anchor=args.anchor, n_clients=args.clients, days=args.days)
    sandbox = HarvestSandbox(
        token=args.token,
        account_id=args.account_id,
        rate_limit=None if args.no_rate_limit else args.rate_limit,
    )
    sandbox.load(dataset)
    del dataset
    url = sandbox.start(args.host, args.port)
    print(
        f"generated {args.entries} entries in {time.perf_counter() - started:.1f}s",
        file=sys.stderr,
        flush=True,
    )
    print(f"HARVEST_SANDBOX_URL={url}", flush=True)
    return serve_until(stopping, sandbox.stop)


if __name__ == "__main__":
    sys.exit(main())
