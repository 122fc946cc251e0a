"""CLI: serve a Stripe sandbox, print ``STRIPE_SANDBOX_URL=...`` and run until SIGTERM/SIGINT.

Example: ``python -m sandbox.stripe --port 12111 --secret-key sk_test_sandbox \\
--webhook-url http://127.0.0.1:8080/stripe/webhook --webhook-secret whsec_test``
"""

from __future__ import annotations

import argparse
import sys

from sandbox.serving import serve_until, stop_on_signals
from sandbox.stripe.server import DEFAULT_SECRET_KEY, StripeSandbox


def main(argv: list[str] | None = None) -> int:
    """Run the sandbox in the foreground; exit code 0 on a signal-initiated shutdown."""
    parser = argparse.ArgumentParser(prog="python -m sandbox.stripe", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--secret-key", default=DEFAULT_SECRET_KEY, help="the API key clients must present")
    parser.add_argument("--webhook-url", default=None, help="POST every event here, signed")
    parser.add_argument("--webhook-secret", default=None, help="signing secret (generated when omitted)")
    parser.add_argument("--webhook-events", default=None, help="comma-separated event types (default: all)")
    parser.add_argument("--seed", type=int, default=None, help="makes object ids reproducible")
    parser.add_argument("--bulk-charges", type=int, default=0,
                        help="seed this many past card charges with balance transactions, refunds, fees and "
                             "automatic payouts before serving (benchmarks; no events)")  # fmt: skip
    args = parser.parse_args(argv)
    if not args.secret_key.startswith("sk_"):
        parser.error("--secret-key must look like sk_test_...")

    stopping = stop_on_signals()
    sandbox = StripeSandbox(secret_key=args.secret_key, seed=args.seed)
    if args.bulk_charges:
        counts = sandbox.seed_balance_transactions(args.bulk_charges)
        print(f"seeded {counts}", file=sys.stderr, flush=True)
    if args.webhook_url:
        events = args.webhook_events.split(",") if args.webhook_events else None
        secret = sandbox.set_webhook(args.webhook_url, args.webhook_secret, events=events)
        print(f"webhooks to {args.webhook_url}, signing secret {secret}", file=sys.stderr, flush=True)
    url = sandbox.start(args.host, args.port)
    print(f"STRIPE_SANDBOX_URL={url}", flush=True)
    return serve_until(stopping, sandbox.stop)


if __name__ == "__main__":
    sys.exit(main())
