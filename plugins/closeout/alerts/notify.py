"""Task failure and success callbacks of every closeout DAG (wired by ``closeout.dag_defaults``).

On a failure (after the task's retries): count it against its cause in the warehouse, and for a new cause
(or a channel that failed last time) send the platform team's alert and, for money DAGs, finance's. On a
success: resolve the task's open causes. Neither ever raises: a receiver or the warehouse being down is
logged (the channel and the reason, never a credential) and the task's own state stands.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from closeout.alerts import routing
from closeout.alerts.failure import FailureFacts, compose_failure_alert, facts_from_context, mask_shapes
from closeout.alerts.fingerprint import fingerprint, normalise
from closeout.alerts.markers import finance_alerted

log = logging.getLogger(__name__)

# The connections whose values are masked, and their lookup, live with the one masking (re-exported here).
from closeout.masking import KNOWN_CONN_IDS, known_secrets  # noqa: E402,F401


def _sender(channel: str, delivery: str | None = None) -> Callable[[Any], object]:
    from closeout.alerts.mail import send_email
    from closeout.alerts.webhook import post_webhook

    if channel == routing.FINANCE_SMTP:
        return lambda alert: send_email(alert, channel, message_id=delivery)
    return lambda alert: post_webhook(alert, channel, idempotency_key=delivery)


def delivery_id(cause_id: int, fingerprint: str, channel: str) -> str:
    """One alert's identity: its cause (a new cause after a resolution has a new id) and channel, plus part of
    the fingerprint so two warehouses' cause numbers do not collide in one mailbox. Sent as the e-mail's
    Message-ID and the webhook's Idempotency-Key: delivery is at least once (a worker killed after the send and
    before its record sends again, ``closeout.faults`` point ``alert.*.after_send``), and the repeat carries the
    same identity, so receivers that drop a known Message-ID or key deliver the alert once."""
    return f"closeout-alert-{cause_id}-{fingerprint[:16]}-{channel.replace('_', '-')}@closeout"


def notify_failure(context: Mapping[str, Any]) -> dict[str, Any]:
    """The failure callback's work; returns what happened per channel (for logs and tests)."""
    try:
        failure = facts_from_context(context)
    except Exception as exc:  # never mask the task's failure
        log.error("failure alert: could not read the failed task from its context: %s", type(exc).__name__)
        return {"error": "context"}
    exception = context.get("exception")
    channels = routing.channels_for(failure.dag_id, finance_already_alerted=finance_alerted(exception))
    try:
        return _notify(failure, channels)
    except Exception as exc:
        log.error("failure alert for %s.%s not sent: %s", failure.dag_id, failure.task_id, type(exc).__name__)
        return {"error": type(exc).__name__}


def _notify(failure: FailureFacts, channels: tuple[str, ...]) -> dict[str, Any]:
    from closeout.alerts import record
    from closeout.warehouse.db import connect

    normalised = normalise(failure.message)
    cause = record.Cause(fingerprint(failure.dag_id, failure.task_id, failure.exception_type, normalised),
                         failure.dag_id, failure.task_id, failure.exception_type, normalised,
                         mask_shapes(failure.message)[:4000], routing.is_money_dag(failure.dag_id))  # fmt: skip
    secrets = known_secrets()
    outcome: dict[str, Any] = {"fingerprint": cause.fingerprint, "channels": {}}
    try:
        conn = connect()
    except Exception as exc:  # the warehouse may be the very thing that failed
        log.error("failure alert: warehouse unreachable (%s): sending without de-duplication", type(exc).__name__)
        note = "(The warehouse could not be reached to de-duplicate this alert: repeats may follow.)"
        for channel in channels:
            alert = _compose(failure, channel, None, None, secrets, None, note)
            outcome["channels"][channel] = _send_now(failure, channel, alert)
        return outcome
    with conn:
        cause_id, occurrences = record.record_failure(conn, cause, failure.run_id)
        outcome.update(cause_id=cause_id, occurrences=occurrences)
        exponents = record.exponents(conn)
        for channel in channels:
            alert = _compose(failure, channel, cause_id, occurrences, secrets, exponents, None)
            delivery = delivery_id(cause_id, cause.fingerprint, channel)
            status, error = record.deliver_once(conn, cause_id, channel, alert.subject,
                                                lambda a=alert, c=channel, d=delivery: _sender(c, d)(a))  # fmt: skip
            if error:
                log.error("failure alert on channel %s for %s.%s (cause %s) failed: %s", channel, failure.dag_id,
                          failure.task_id, cause_id, mask_shapes(error))  # fmt: skip
            outcome["channels"][channel] = status
    log.info("failure alert for %s.%s: cause %s, occurrence %s: %s", failure.dag_id, failure.task_id,
             outcome.get("cause_id"), outcome.get("occurrences"), outcome["channels"])  # fmt: skip
    return outcome


def _compose(failure: FailureFacts, channel: str, cause_id: int | None, occurrences: int | None,
             secrets: list[str], exponents: dict[str, int] | None, note: str | None):  # fmt: skip
    audience = "platform" if channel in routing.PLATFORM_CHANNELS else "finance"
    return compose_failure_alert(failure, audience=audience, money=routing.is_money_dag(failure.dag_id),
                                 cause_id=cause_id, occurrences=occurrences, secrets=secrets, exponents=exponents,
                                 note=note)  # fmt: skip


def _send_now(failure: FailureFacts, channel: str, alert) -> str:
    try:
        _sender(channel)(alert)
        return "sent"
    except Exception as exc:
        log.error("failure alert on channel %s for %s.%s failed: %s", channel, failure.dag_id, failure.task_id,
                  mask_shapes(f"{type(exc).__name__}: {exc}"))  # fmt: skip
        return "failed"


def resolve_on_success(context: Mapping[str, Any]) -> int:
    """The success callback's work: close the task's open causes (0 when there were none)."""
    ti = context.get("ti") or context.get("task_instance")
    try:
        from closeout.alerts import record
        from closeout.warehouse.db import connect

        with connect() as conn:
            return record.resolve(conn, ti.dag_id, ti.task_id, ti.run_id)
    except Exception as exc:  # never fail a task that succeeded
        log.warning("could not resolve open failure causes of %s.%s: %s", getattr(ti, "dag_id", "?"),
                    getattr(ti, "task_id", "?"), type(exc).__name__)  # fmt: skip
        return 0
