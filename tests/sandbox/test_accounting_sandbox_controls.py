"""The ``/_sandbox/*`` controls both accounting sandboxes share (``sandbox.control``), over plain HTTP as a harness
in another process drives them: the clock moves, a fault is armed and cleared, a reconnect hands out a new first
refresh token, stats and objects are read, and anything else is a clear 4xx."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from sandbox.quickbooks import QuickBooksSandbox
from sandbox.xero import XeroSandbox


@pytest.fixture(params=["quickbooks", "xero"])
def sandbox(request) -> Iterator[QuickBooksSandbox | XeroSandbox]:
    made = QuickBooksSandbox() if request.param == "quickbooks" else XeroSandbox()
    made.start()
    yield made
    made.stop()


def _entity(sandbox) -> str:
    return "Customer" if isinstance(sandbox, QuickBooksSandbox) else "Contacts"


def test_the_controls_move_the_clock_arm_faults_reconnect_and_report(sandbox) -> None:
    base = f"{sandbox.base_url}/_sandbox"
    before = sandbox.now()
    moved = requests.post(f"{base}/clock/advance", json={"seconds": 120}, timeout=10)
    assert moved.status_code == 200 and moved.json()["now"] >= before + 120

    armed = requests.post(f"{base}/faults", json={"kind": "timeout_after_commit", "times": 2}, timeout=10)
    assert armed.status_code == 200 and armed.json() == {"ok": True}
    assert requests.post(f"{base}/faults", json={"times": 1}, timeout=10).status_code == 400  # no kind
    assert requests.delete(f"{base}/faults", timeout=10).json() == {"ok": True}

    first = requests.post(f"{base}/connect", timeout=10).json()["refresh_token"]
    second = requests.post(f"{base}/connect", timeout=10).json()["refresh_token"]
    assert first and second and first != second, "each reconnect is a new grant"

    stats = requests.get(f"{base}/stats", timeout=10).json()
    assert "log" not in stats and isinstance(stats["creates"], dict)
    assert requests.get(f"{base}/objects/{_entity(sandbox)}", timeout=10).json() == []
    assert requests.get(f"{base}/objects/Nope", timeout=10).status_code == 404
    assert requests.post(f"{base}/faults", data=b"{not json", timeout=10).status_code == 400
    assert requests.get(f"{base}/nothing", timeout=10).status_code == 404
