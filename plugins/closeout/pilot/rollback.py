"""Rollback criteria of the pilot: evaluated on every comparison run, breaches alerted once each.

A breach is a (client, month, criterion) of the cohort (``include/sql/pilot/criteria.sql``). It is told through
closeout's alert path (``closeout.alerts.record``: the same causes table, the same one-delivery-per-channel
de-duplication, the same connections and masking): the platform webhook and finance's e-mail and webhook.
While the breach holds, later runs count it against its open cause and send nothing; once it no longer holds its
cause is resolved, so a relapse is news again. The cause is recorded under a task id of its own
(``pilot_rollback``), so a comparison task that succeeds does not resolve it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

import psycopg

from closeout.alerts import record, routing
from closeout.alerts.compose import FinanceAlert, mask_text, mask_value
from closeout.alerts.fingerprint import fingerprint
from closeout.paths import load_sql
from closeout.pilot.config import RollbackCriteria

log = logging.getLogger(__name__)

DAG_ID = "closeout_pilot_compare"
CAUSE_TASK = "pilot_rollback"
CAUSE_TYPE = "PilotRollbackCriterion"
CHANNELS = routing.PLATFORM_CHANNELS + routing.FINANCE_CHANNELS
EVIDENCE = "closeout.pilot_comparisons, closeout.pilot_comparison_items, closeout.pilot_breaches"


@dataclass(frozen=True)
class Breach:
    client_key: str
    period: str
    criterion: str
    observed: str
    threshold: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    @property
    def normalised(self) -> str:
        return f"pilot rollback criterion {self.criterion} breached for client {self.client_key} in {self.period}"

    @property
    def fingerprint(self) -> str:
        return fingerprint(DAG_ID, CAUSE_TASK, CAUSE_TYPE, self.normalised)


def evaluate(conn: psycopg.Connection, *, run_id: str, compared_on: date, criteria: RollbackCriteria) -> list[Breach]:
    """The criteria this run breaches, recorded in ``closeout_data.pilot_breaches`` (caller's transaction)."""
    params = {"run_id": run_id, "compared_on": compared_on, "hard_mismatch": criteria.hard_mismatch,
              "tolerance": criteria.amount_tolerance_minor, "days": criteria.consecutive_failing_days}  # fmt: skip
    rows = conn.execute(load_sql("pilot/criteria.sql"), params).fetchall()
    found = [Breach(*row) for row in rows]
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO closeout_data.pilot_breaches (run_id, client_key, period, criterion, observed, threshold)
               VALUES (%s, %s, %s, %s, %s, %s)""",
            [(run_id, b.client_key, b.period, b.criterion, b.observed, b.threshold) for b in found],
        )
    return found


def default_senders() -> dict[str, Callable[[FinanceAlert, str], object]]:
    """Platform's webhook and finance's e-mail and webhook, as every closeout alert uses them, each send carrying
    the delivery's identity (``closeout.alerts.notify.delivery_id``: Message-ID, Idempotency-Key), so a resend
    after a worker died between the send and its record is recognisably the same alert."""
    from closeout.alerts.mail import send_email
    from closeout.alerts.webhook import post_webhook

    platform, smtp, webhook = routing.PLATFORM_WEBHOOK, routing.FINANCE_SMTP, routing.FINANCE_WEBHOOK
    return {platform: lambda a, d: post_webhook(a, platform, idempotency_key=d),
            smtp: lambda a, d: send_email(a, smtp, message_id=d),
            webhook: lambda a, d: post_webhook(a, webhook, idempotency_key=d)}  # fmt: skip


def alert(conn: psycopg.Connection, breaches: list[Breach], *, run_id: str,
          senders: Mapping[str, Callable[[FinanceAlert, str], object]] | None = None) -> dict[str, Any]:  # fmt: skip
    """Tell each breach once per channel; resolve the causes of breaches that no longer hold. Never raises for
    a receiver that is down: the delivery is recorded as failed and tried again on the next run."""
    from closeout.alerts.notify import delivery_id, known_secrets

    senders = default_senders() if senders is None else senders
    secrets = known_secrets()
    outcome: dict[str, Any] = {"sent": 0, "already_sent": 0, "failed": 0, "resolved": 0}
    for breach in breaches:
        composed = compose(breach, run_id, secrets)
        cause = record.Cause(breach.fingerprint, DAG_ID, CAUSE_TASK, CAUSE_TYPE, breach.normalised,
                             composed.text[:4000], True)  # fmt: skip
        cause_id, _ = record.record_failure(conn, cause, run_id)
        with conn.transaction():
            conn.execute(
                """UPDATE closeout_data.pilot_breaches SET alert_cause_id = %s
                   WHERE run_id = %s AND client_key = %s AND period = %s AND criterion = %s""",
                (cause_id, run_id, breach.client_key, breach.period, breach.criterion),
            )
        for channel in CHANNELS:
            if channel not in senders:
                continue
            delivery = delivery_id(cause_id, breach.fingerprint, channel)
            status, error = record.deliver_once(conn, cause_id, channel, composed.subject,
                                                lambda s=senders[channel], a=composed, d=delivery: s(a, d))  # fmt: skip
            outcome[status] = outcome.get(status, 0) + 1
            if error:
                log.error("pilot rollback alert on %s for %s %s %s failed: %s", channel, breach.client_key,
                          breach.period, breach.criterion, error)  # fmt: skip
    with conn.transaction():
        outcome["resolved"] = conn.execute(
            """UPDATE closeout_data.alert_causes SET resolved_at = clock_timestamp(), resolved_by_run = %s
               WHERE dag_id = %s AND task_id = %s AND resolved_at IS NULL AND NOT (fingerprint = ANY(%s))""",
            (run_id, DAG_ID, CAUSE_TASK, [b.fingerprint for b in breaches]),
        ).rowcount
    return outcome


def compose(breach: Breach, run_id: str, secrets: list[str] | None = None) -> FinanceAlert:
    """One alert that names the client, the month and the criterion, what was observed against the threshold,
    where the evidence is and what rolling back means."""
    secrets = secrets or []
    subject = (f"closeout pilot: rollback criterion {breach.criterion} breached for {breach.client_key} "
               f"({breach.period})")
    evidence = (f"closeout.pilot_comparison_items WHERE run_id = '{run_id}' AND client_key = '{breach.client_key}' "
                f"AND period = '{breach.period}'")  # fmt: skip
    text = "\n".join([
        "A rollback criterion of the closeout pilot is breached.",
        "",
        f"Client:    {breach.client_key}",
        f"Period:    {breach.period}",
        f"Criterion: {breach.criterion}",
        f"Observed:  {breach.observed}",
        f"Threshold: {breach.threshold}",
        f"Run:       {DAG_ID} {run_id}",
        f"Evidence:  {evidence} (summary: closeout.pilot_comparisons, breaches: closeout.pilot_breaches)",
        "",
        "What to do: review the differences; to roll the client back, remove it from the pilot cohort",
        "(CLOSEOUT_PILOT_CONFIG): closeout stops publishing and paying out for it and its drafts stay in shadow.",
        "See docs/pilot.md. This alert is sent once while the breach holds.",
    ])  # fmt: skip
    payload = {"event": "pilot_rollback_criterion", "dag_id": DAG_ID, "run_id": run_id, **breach.as_dict(),
               "evidence": EVIDENCE, "text": text}  # fmt: skip
    return FinanceAlert(subject=mask_text(subject, secrets), text=mask_text(text, secrets),
                        payload=mask_value(payload, secrets))  # fmt: skip
