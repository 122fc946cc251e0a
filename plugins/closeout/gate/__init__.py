"""The payout gate's building blocks, called by the reconcile DAG when a check breaches its tolerance.

``breach`` (a) pauses ``closeout_payouts`` through the Airflow API, (b) opens the payout hold for the
cause or finds the open one, (c) alerts finance once per new hold (e-mail and webhook, each recorded
when sent). Every step is idempotent, so a retried task repeats nothing that already happened; a
channel that failed is retried by the next call. ``payouts_blocked`` is the payouts DAG's gate, and
``release_hold`` (or ``python -m closeout.gate release``) the only way a hold ends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg

from closeout.alerts.compose import BreachFacts, FinanceAlert, compose_hold_alert
from closeout.alerts.mail import FINANCE_SMTP_CONN_ID, AlertDeliveryError, send_email
from closeout.alerts.webhook import FINANCE_WEBHOOK_CONN_ID, post_webhook
from closeout.gate.airflow_api import AIRFLOW_API_CONN_ID, AirflowApiError, AirflowApiHook
from closeout.gate.holds import Hold, HoldError, cause_key, open_hold, open_holds, payouts_blocked, release_hold

__all__ = [
    "BreachOutcome",
    "GateError",
    "Hold",
    "HoldError",
    "breach",
    "cause_key",
    "green",
    "open_holds",
    "payouts_blocked",
    "release_hold",
]

PAYOUTS_DAG_ID = "closeout_payouts"
log = logging.getLogger(__name__)


class GateError(RuntimeError):
    """The hold is recorded, but pausing or alerting failed; the task should fail and be retried."""


@dataclass
class BreachOutcome:
    hold: Hold
    hold_created: bool
    paused: bool | None
    alerts_sent: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _secrets(*conn_ids: str) -> list[str]:
    """Passwords of the connections involved, masked out of the alert should a caller pass one in."""
    from closeout.connections import get_connection

    found = []
    for conn_id in conn_ids:
        try:
            found.append(get_connection(conn_id).password or "")
        except Exception:  # noqa: S112 - an undefined connection has no secret to mask
            continue
    return [s for s in found if s]


def _triggering_user() -> str | None:
    """The person who triggered the Airflow run this breach is found in (None when scheduled or outside a task):
    they may not release the hold it opens (invariant 11)."""
    try:
        from airflow.sdk import get_current_context

        dag_run = get_current_context()["dag_run"]
    except Exception:  # not in a task: nobody to name
        return None
    name = getattr(dag_run, "triggering_user_name", None)
    return str(name) if name else None


def _exponents(conn: psycopg.Connection) -> dict[str, int]:
    """Currency -> decimals, so the alert shows major units; in its own transaction, like every step here."""
    with conn.transaction():
        return dict(conn.execute("SELECT code, exponent FROM closeout_data.currencies").fetchall())


def _send_once(
    conn: psycopg.Connection, hold: Hold, channel: str, alert: FinanceAlert, send: Callable[[FinanceAlert], Any]
) -> bool:
    """Send on a channel unless it was already recorded for this hold; True when sent now.

    The row is written after delivery, under a lock per hold and channel: a crash between the two sends
    again on retry (at least once) rather than never.
    """
    with conn.transaction():
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 8))", (f"finance_alert:{hold.hold_id}:{channel}",)
        )
        done = conn.execute(
            "SELECT 1 FROM closeout_data.finance_alerts WHERE hold_id = %s AND channel = %s", (hold.hold_id, channel)
        ).fetchone()
        if done:
            return False
        send(alert)
        conn.execute(
            "INSERT INTO closeout_data.finance_alerts (hold_id, channel, cause_key, subject) VALUES (%s, %s, %s, %s)",
            (hold.hold_id, channel, hold.cause_key, alert.subject),
        )
    return True


def breach(
    conn: psycopg.Connection,
    *,
    recon_run_id: str,
    period: str | None,
    check_name: str,
    observed: Mapping[str, Any] | Any,
    tolerance: Mapping[str, Any] | Any,
    counts: Mapping[str, Any],
    evidence: str,
    dag_id: str = PAYOUTS_DAG_ID,
    api_conn_id: str = AIRFLOW_API_CONN_ID,
    smtp_conn_id: str = FINANCE_SMTP_CONN_ID,
    webhook_conn_id: str = FINANCE_WEBHOOK_CONN_ID,
    report_url: str | None = None,
    caused_by: str | None = None,
) -> BreachOutcome:
    """Pause payouts, hold them for this cause, tell finance once. Safe to retry.

    Pausing happens on every call (someone may have unpaused since), the hold and the alerts once per
    cause. A failure to pause or to alert does not undo the hold: the hold is committed first among the
    durable effects, the other channel is still tried, and GateError is raised at the end so the task
    retries what is missing. ``report_url`` (the month-end close's report) is linked in the alert.
    """
    facts = BreachFacts(recon_run_id, period, check_name, observed, tolerance, dict(counts), evidence)
    problems: list[str] = []

    paused: bool | None = None
    try:
        paused = AirflowApiHook(api_conn_id).pause_dag(dag_id)
    except (AirflowApiError, ValueError) as exc:
        problems.append(f"pause {dag_id}: {exc}")
        log.error("could not pause %s: %s", dag_id, exc)

    reason = f"reconciliation check {check_name} out of tolerance for {period or 'no period'} (run {recon_run_id})"
    details = {"observed": observed, "tolerance": tolerance, "counts": dict(counts), "evidence": evidence}
    hold, created = open_hold(
        conn, recon_run_id=recon_run_id, check_name=check_name, period=period, reason=reason, details=details,
        caused_by=caused_by or _triggering_user(),
    )
    log.info("payout hold %s %s for cause %s", hold.hold_id, "opened" if created else "already open", hold.cause_key)

    alert = compose_hold_alert(
        facts,
        hold_id=hold.hold_id,
        opened_at=hold.opened_at,
        dag_id=dag_id,
        paused=paused,
        pause_problem=problems[0] if problems else None,
        secrets=_secrets(api_conn_id, smtp_conn_id, webhook_conn_id),
        exponents=_exponents(conn),
        report_url=report_url,
    )
    sent: list[str] = []
    # the hold's alert keeps one identity across a resend after a crash between send and record (closeout.faults)
    delivery = f"closeout-hold-{hold.hold_id}-{int(hold.opened_at.timestamp())}"
    channels: dict[str, Callable[[FinanceAlert], Any]] = {
        "email": lambda a: send_email(a, smtp_conn_id, message_id=f"{delivery}-email@closeout"),
        "webhook": lambda a: post_webhook(a, webhook_conn_id, idempotency_key=f"{delivery}-webhook@closeout"),
    }
    for channel, send in channels.items():
        try:
            if _send_once(conn, hold, channel, alert, send):
                sent.append(channel)
        except (AlertDeliveryError, ValueError) as exc:
            problems.append(f"{channel} alert: {exc}")
            log.error("finance %s alert for hold %s failed: %s", channel, hold.hold_id, exc)

    outcome = BreachOutcome(hold, created, paused, sent, problems)
    if problems:
        raise GateError(f"payout hold {hold.hold_id} is recorded, but: " + "; ".join(problems))
    return outcome


def green(conn: psycopg.Connection, *, check_name: str, period: str | None) -> list[Hold]:
    """A check came back within tolerance: releases nothing, returns the holds of that cause still open
    so the reconcile can report that they wait for a person's release."""
    key = cause_key(check_name, period)
    return [hold for hold in open_holds(conn) if hold.cause_key == key]
