"""The ``/_sandbox/*`` control endpoints the accounting sandboxes (QuickBooks Online, Xero) share, written once.

A harness in another process (the demo, a benchmark, the deployment test) drives a sandbox over HTTP with them:
``POST /_sandbox/clock/advance {"seconds"}``, ``POST /_sandbox/faults {"kind", "times", "path_prefix", "after",
"delay"}``, ``DELETE /_sandbox/faults``, ``POST /_sandbox/connect`` (a new first refresh token, as a person
reconnecting the app would get), ``GET /_sandbox/stats``, ``GET /_sandbox/objects/<entity>``. No auth: they are
the sandbox's own, never the vendor's API.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sandbox.serving import Response

Dumps = Callable[[Any], bytes]


def control(sandbox: Any, method: str, path: str, body: bytes, *, connect: Callable[[], str],
            dumps: Dumps) -> Response:  # fmt: skip
    """One control request against ``sandbox`` (its ``advance_clock``, ``faults``, ``stats``, ``create_counts`` and
    ``objects``); ``connect`` issues a new first refresh token; ``dumps`` is the sandbox's own JSON encoder."""
    try:
        args = json.loads(body or b"{}")
    except ValueError:
        return 400, dumps({"error": "body is not JSON"}), []
    parts = path.strip("/").split("/")[1:]
    if method == "POST" and parts == ["clock", "advance"]:
        return 200, dumps({"now": sandbox.advance_clock(float(args["seconds"]))}), []
    if method == "POST" and parts == ["faults"]:
        try:
            sandbox.faults.add(str(args["kind"]), times=int(args.get("times", 1)), after=int(args.get("after", 0)),
                               path_prefix=str(args.get("path_prefix", "/")), delay=float(args.get("delay", 0)))
        except (KeyError, ValueError) as exc:
            return 400, dumps({"error": str(exc)}), []
        return 200, dumps({"ok": True}), []
    if method == "DELETE" and parts == ["faults"]:
        sandbox.faults.clear()
        return 200, dumps({"ok": True}), []
    if method == "POST" and parts == ["connect"]:
        return 200, dumps({"refresh_token": connect()}), []
    if method == "GET" and parts == ["stats"]:
        stats = sandbox.stats()
        stats.pop("log", None)
        return 200, dumps({**stats, "creates": sandbox.create_counts()}), []
    if method == "GET" and len(parts) == 2 and parts[0] == "objects":
        try:
            return 200, dumps(sandbox.objects(parts[1])), []
        except KeyError:
            return 404, dumps({"error": f"no such entity {parts[1]}"}), []
    return 404, dumps({"error": f"no control {method} {path}"}), []
