"""CLI: generate a dataset, serve it, print ``TOGGL_SANDBOX_URL=...`` and run until SIGTERM/SIGINT.

Example: ``python -m sandbox.toggl --entries 1000000 --seed 7 --port 8766 --quota none --no-short-term-limit``
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date

from sandbox.serving import serve_until, stop_on_signals
from sandbox.toggl.data import generate_dataset
from sandbox.toggl.server import TogglSandbox


def _quota(text: str) -> int | None:
    if text.lower() == "none":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of requests per hour or 'none', got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("a quota cannot be negative")
    return value


def _short_term(text: str) -> tuple[int, float]:
    try:
        burst, seconds = text.split("/", 1)
        return int(burst), float(seconds)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected BURST/SECONDS like 3/1, got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    """Run the sandbox in the foreground; exit code 0 on a signal-initiated shutdown."""
    parser = argparse.ArgumentParser(prog="python -m sandbox.toggl", description=__doc__)
    parser.add_argument("--entries", type=int, default=10_000, help="number of time entries to generate")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--anchor", type=date.fromisoformat, default=None, help="last start date, YYYY-MM-DD")
    parser.add_argument("--days", type=int, default=365, help="how many days the entries span")
    parser.add_argument("--users", type=int, default=None, help="number of users (default: derived)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--token", default=None, help="API token (default: the sandbox's fixed fake token)")
    parser.add_argument("--quota", type=_quota, default=600, help="requests/hour: 600, 240, 30 or none")
    parser.add_argument("--me-quota", type=_quota, default=30, help="requests/hour under /api/v9/me, or none")
    limits = parser.add_mutually_exclusive_group()
    limits.add_argument("--short-term", type=_short_term, default=(3, 1.0), help="BURST/SECONDS (default 3/1)")
    limits.add_argument("--no-short-term-limit", action="store_true")
    args = parser.parse_args(argv)

    stopping = stop_on_signals()

    started = time.perf_counter()
    dataset = generate_dataset(args.entries, seed=args.seed, anchor=args.anchor, days=args.days, n_users=args.users)
    options = {"token": args.token} if args.token else {}
    sandbox = TogglSandbox(
        quota=args.quota,
        me_quota=args.me_quota,
        short_term=None if args.no_short_term_limit else args.short_term,
        **options,
    )
    sandbox.load(dataset)
    del dataset
    url = sandbox.start(args.host, args.port)
    print(
        f"generated {args.entries} entries in {time.perf_counter() - started:.1f}s; token {sandbox.token}",
        file=sys.stderr,
        flush=True,
    )
    print(f"TOGGL_SANDBOX_URL={url}", flush=True)
    return serve_until(stopping, sandbox.stop)


if __name__ == "__main__":
    sys.exit(main())
