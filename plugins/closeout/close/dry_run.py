"""What a dry run does instead of the steps that would change something outside the warehouse's working data.

A dry run syncs, drafts, reads Stripe's events, posts journals and exports like a real close, but: no Stripe
mutation (publish is a preview), no period lock, no payout gate (reconciliation breaches are reported, nothing is
paused, held or alerted), and its files go to their own places in the artifact store (``CLOSEOUT_ARTIFACTS_URL``,
docs/artifacts.md) so a real close's export and Data Docs stay as they are: ``exports/dry-run/<YYYY-MM>/``,
``data_docs/dry-run/`` and the report under ``reports/<YYYY-MM>/dry-run/``. The local overrides of a one-machine
setup (``CLOSEOUT_DRY_RUN_EXPORT_DIR``, ``CLOSEOUT_EXPORT_DIR``, ``CLOSEOUT_DATA_DOCS_DIR``) still apply.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import psycopg

from closeout.paths import load_sql

log = logging.getLogger(__name__)

EXPORT_ENV = "CLOSEOUT_DRY_RUN_EXPORT_DIR"


def export_root() -> Path | str:
    """Where dry-run exports go (``accounting.export.export_period``'s ``root``): ``exports/dry-run`` in the
    artifact store; a local folder only when configured (env CLOSEOUT_DRY_RUN_EXPORT_DIR, or ``dry-run/`` under
    a local CLOSEOUT_EXPORT_DIR)."""
    from closeout import artifacts
    from closeout.accounting.export import export_root as real_root

    override = os.environ.get(EXPORT_ENV)
    if override:
        return Path(override)
    if os.environ.get("CLOSEOUT_EXPORT_DIR"):
        return real_root() / "dry-run"
    return artifacts.path("exports", "dry-run")


def data_docs() -> dict[str, Any]:
    """``run_reconciliation``'s Data Docs arguments for a dry run: ``data_docs/dry-run`` in the artifact store, or
    ``dry-run/`` under a local CLOSEOUT_DATA_DOCS_DIR when that is set."""
    from closeout import artifacts
    from closeout.recon.runner import DOCS_ENV, docs_dir

    if os.environ.get(DOCS_ENV):
        return {"data_docs_dir": docs_dir() / "dry-run"}
    return {"docs_location": artifacts.path("data_docs", "dry-run")}


def reconcile(conn: psycopg.Connection, period: str, airflow_run_id: str) -> dict[str, Any]:
    """Run every check and report the breaches the gate would act on, without the gate; then forget the run, so
    the payouts gate (which reads the latest reconciliation) never sees a dry run's verdict."""
    from closeout.recon.runner import run_reconciliation
    from closeout.recon.tasks import payouts_dag_id

    result = run_reconciliation(conn, period=period, airflow_run_id=airflow_run_id, **data_docs())
    breaches = [{"check": c.check_name, "status": c.status, "observed": c.observed, "tolerance": c.tolerance}
                for c in result.breaches]  # fmt: skip
    conn.execute(load_sql("close/forget_dry_recon.sql"), {"run_id": result.run_id})
    conn.commit()
    summary = {"dry_run": True, "status": result.status, "data_docs": result.data_docs,
               "checks": {c.check_name: c.status for c in result.checks}, "breaches": breaches,
               "would_hold": [b["check"] for b in breaches],
               "would_pause": payouts_dag_id() if breaches else None}  # fmt: skip
    if breaches:
        log.warning("dry run: reconciliation of %s breaches %s; a real close would pause %s, open a payout hold "
                    "per check and alert finance", period, ", ".join(summary["would_hold"]),
                    summary["would_pause"])  # fmt: skip
    else:
        log.info("dry run: reconciliation of %s is green: %s", period, summary["checks"])
    return summary
