"""The closeout_reconcile task: run the suites, record them, and hold payouts on any breach."""

from __future__ import annotations

import logging
import os
from datetime import datetime
from typing import Any

from closeout.recon.runner import CheckResult, ReconResult, run_reconciliation

log = logging.getLogger(__name__)

PAYOUTS_DAG_ENV = "CLOSEOUT_PAYOUTS_DAG_ID"  # the DAG a breach pauses; default closeout_payouts


def payouts_dag_id() -> str:
    from closeout import gate

    return os.environ.get(PAYOUTS_DAG_ENV) or gate.PAYOUTS_DAG_ID


def _when(value: str | datetime | None) -> datetime | None:
    if value in (None, ""):
        return None
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


ALERT_ROWS = 10  # failing rows finance's alert names, largest first; all of them stay in closeout.recon_checks


def alert_observed(check: CheckResult, run_id: str) -> Any:
    """What the alert shows as observed: per currency the count and sums, then the failing rows themselves (which
    invoice, entry, journal, account or payout, and by how much), so finance can act without opening anything."""
    observed = check.observed.get("by_currency") or check.evidence.get("error") or {}
    rows = check.evidence.get("rows") or []
    if not isinstance(observed, dict) or not rows:
        return observed
    named = {f"{r['item']} ({r['kind']})": {"currency": r["currency"], "difference_minor": r["difference_minor"]}
             for r in rows[:ALERT_ROWS]}  # fmt: skip
    where = f"closeout.recon_checks, check {check.check_name}, run {run_id} (evidence)"
    return {**observed, "failing rows, largest first": named, "all failing rows": where}


def breach_all(conn, result: ReconResult, report_url: str | None = None) -> list[dict[str, Any]]:
    """closeout.gate.breach for every failed (or errored) check: pause closeout_payouts, hold, alert finance.
    A green check releases nothing: the holds still open for it are only reported."""
    from closeout import gate

    outcomes = []
    for check in result.breaches:
        counts = {"difference_rows": check.observed.get("difference_rows", 0),
                  "failing_rows": check.observed.get("failing_rows", 0)}  # fmt: skip
        evidence = check.evidence.get("data_docs") or result.data_docs or f"closeout.recon_checks run {result.run_id}"
        outcome = gate.breach(
            conn, recon_run_id=result.run_id, period=result.period, check_name=check.check_name,
            observed=alert_observed(check, result.run_id),
            tolerance=check.tolerance, counts=counts, evidence=evidence, dag_id=payouts_dag_id(), report_url=report_url,
        )  # fmt: skip
        conn.commit()
        outcomes.append({"check": check.check_name, "hold_id": outcome.hold.hold_id, "created": outcome.hold_created})
    return outcomes


def reconcile(airflow_run_id: str, period: str | None = None, ledger_cutoff: str | None = None,
              external_cutoff: str | None = None, report_url: str | None = None) -> dict[str, Any]:  # fmt: skip
    from closeout import gate
    from closeout.warehouse.db import connect

    with connect() as conn:
        result = run_reconciliation(conn, period=period or None, ledger_cutoff=_when(ledger_cutoff),
                                    external_cutoff=_when(external_cutoff), airflow_run_id=airflow_run_id)  # fmt: skip
        holds = breach_all(conn, result, report_url)
        still_open = {c.check_name: [h.hold_id for h in gate.green(conn, check_name=c.check_name, period=period)]
                      for c in result.checks if c.status == "passed"}  # fmt: skip
    summary = {"run_id": result.run_id, "status": result.status, "data_docs": result.data_docs,
               "checks": {c.check_name: c.status for c in result.checks}, "holds": holds,
               "open_holds_of_green_checks": {k: v for k, v in still_open.items() if v}}  # fmt: skip
    log.info("reconciliation %s: %s", result.run_id, summary)
    if holds:  # held and alerted: the run fails without retries, the verdict stands until the data changes
        from closeout.gate.held import PayoutsHeld  # finance has the gate's alert: not the notifier's too

        failed = ", ".join(f"{h['check']} (hold {h['hold_id']})" for h in holds)
        raise PayoutsHeld(f"reconciliation {result.run_id} breached: {failed}; payouts are held")
    return summary
