"""The accounting system a tax test pushes to: each test runs against the QuickBooks and the Xero sandbox, connected
with a default code for untaxed clients (the books want a code on every line)."""

from __future__ import annotations

from typing import Any

import pytest
from accounting_tax_support import connect_quickbooks, connect_xero, quickbooks, xero


@pytest.fixture(params=["quickbooks", "xero"])
def books(request: pytest.FixtureRequest, warehouse, monkeypatch: pytest.MonkeyPatch):
    sandbox: Any = quickbooks() if request.param == "quickbooks" else xero()
    if request.param == "quickbooks":
        connect_quickbooks(monkeypatch, sandbox, max_attempts=2, push={"tax_code": "NON"})
    else:
        connect_xero(monkeypatch, sandbox, max_attempts=2, push={"tax_code": "NONE"})
    sandbox.system = request.param
    yield sandbox
    sandbox.stop()
