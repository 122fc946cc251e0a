"""CLI: serve a QuickBooks Online sandbox, print ``QUICKBOOKS_SANDBOX_URL=...``, the token URL, the realm id and
the first refresh token (what a person connecting the company would get), and run until SIGTERM/SIGINT.

Example: ``python -m sandbox.quickbooks --port 8790 --refresh-grace 0 --window 60``
"""

from __future__ import annotations

import argparse
import sys

from sandbox.quickbooks.server import QuickBooksSandbox
from sandbox.serving import serve_until, stop_on_signals


def main(argv: list[str] | None = None) -> int:
    """Run the sandbox in the foreground; exit code 0 on a signal-initiated shutdown."""
    parser = argparse.ArgumentParser(prog="python -m sandbox.quickbooks", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--client-id", default="sandbox-client-id")
    parser.add_argument("--client-secret", default="sandbox-client-secret")
    parser.add_argument("--realm-id", default="9130350000000001")
    parser.add_argument("--refresh-grace", type=float, default=0.0,
                        help="seconds a retired refresh token is still accepted (Intuit documents none)")
    parser.add_argument("--window", type=float, default=60.0, help="rate-limit window in seconds (Intuit: 60)")
    parser.add_argument("--no-rate-limit", action="store_true", help="no per-minute or concurrency limits")
    args = parser.parse_args(argv)

    stopping = stop_on_signals()
    limits = {} if not args.no_rate_limit else {"requests_per_minute": None, "batch_per_minute": None,
                                                 "max_concurrent": None}  # fmt: skip
    sandbox = QuickBooksSandbox(client_id=args.client_id, client_secret=args.client_secret, realm_id=args.realm_id,
                                refresh_grace_seconds=args.refresh_grace, window_seconds=args.window, **limits)
    url = sandbox.start(args.host, args.port)
    print(f"QUICKBOOKS_SANDBOX_URL={url}", flush=True)
    print(f"QUICKBOOKS_TOKEN_URL={sandbox.token_url}", flush=True)
    print(f"QUICKBOOKS_REALM_ID={sandbox.realm_id}", flush=True)
    print(f"QUICKBOOKS_REFRESH_TOKEN={sandbox.first_refresh_token}", flush=True)
    return serve_until(stopping, sandbox.stop)


if __name__ == "__main__":
    sys.exit(main())
