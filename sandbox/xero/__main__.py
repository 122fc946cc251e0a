"""CLI: serve a Xero sandbox, print ``XERO_SANDBOX_URL=...``, the token URL, the tenant id and the first refresh
token (what a person connecting the organisation would get), and run until SIGTERM/SIGINT.

Example: ``python -m sandbox.xero --port 8791 --refresh-grace 1800``
"""

from __future__ import annotations

import argparse
import sys

from sandbox.serving import serve_until, stop_on_signals
from sandbox.xero.server import XeroSandbox


def main(argv: list[str] | None = None) -> int:
    """Run the sandbox in the foreground; exit code 0 on a signal-initiated shutdown."""
    parser = argparse.ArgumentParser(prog="python -m sandbox.xero", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--refresh-grace", type=float, default=1800.0,
                        help="seconds a retired refresh token is still accepted (Xero: 30 minutes)")
    parser.add_argument("--minute", type=float, default=60.0, help="length of the per-minute window in seconds")
    parser.add_argument("--no-rate-limit", action="store_true", help="no minute, day or concurrency limits")
    args = parser.parse_args(argv)

    stopping = stop_on_signals()
    limits = {} if not args.no_rate_limit else {"per_minute": None, "per_day": None, "max_concurrent": None,
                                                 "app_per_minute": None}  # fmt: skip
    sandbox = XeroSandbox(refresh_grace_seconds=args.refresh_grace, minute_seconds=args.minute, **limits)
    url = sandbox.start(args.host, args.port)
    print(f"XERO_SANDBOX_URL={url}", flush=True)
    print(f"XERO_TOKEN_URL={sandbox.token_url}", flush=True)
    print(f"XERO_TENANT_ID={sandbox.tenant_id}", flush=True)
    print(f"XERO_REFRESH_TOKEN={sandbox.first_refresh_token}", flush=True)
    return serve_until(stopping, sandbox.stop)


if __name__ == "__main__":
    sys.exit(main())
