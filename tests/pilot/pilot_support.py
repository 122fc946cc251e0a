"""Pilot configuration files for the pilot tests, and the reconciliation checks that must stay green in shadow."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from closeout.pilot.config import CONFIG_ENV
from closeout.recon import run_reconciliation
from closeout.recon.checks import CHECKS
from closeout.warehouse.db import connect

SHADOW_SAFE_CHECKS = ("entries_to_invoice_lines", "invoices_to_stripe", "stripe_objects")


def write_pilot(path: Path, cohort: dict[str, date], monkeypatch: pytest.MonkeyPatch, **sections) -> Path:
    """A pilot file (JSON form) with ``cohort`` {client_key: from_period} and any other sections, in force."""
    body = {"cohort": [{"client_key": k, "from_period": v.strftime("%Y-%m")} for k, v in cohort.items()], **sections}
    path.write_text(json.dumps(body), encoding="utf-8")
    monkeypatch.setenv(CONFIG_ENV, str(path))
    return path


def recon_statuses(tmp_path: Path, names: tuple[str, ...] = SHADOW_SAFE_CHECKS) -> dict[str, str]:
    """Run the named reconciliation checks (the real runner and suites) and return their verdicts."""
    checks = tuple(c for c in CHECKS if c.name in names)
    assert len(checks) == len(names), [c.name for c in CHECKS]
    with connect() as conn:
        result = run_reconciliation(conn, data_docs_dir=tmp_path / "docs", checks=checks)
    return {c.check_name: c.status for c in result.checks}
