"""Post a finance alert as JSON to the ``finance_webhook`` connection (host = the full URL; optional
password = bearer token). The token goes in the Authorization header only, never in a message."""

from __future__ import annotations

import requests

from closeout import faults
from closeout.alerts.compose import FinanceAlert
from closeout.alerts.mail import AlertDeliveryError
from closeout.connections import get_connection

FINANCE_WEBHOOK_CONN_ID = "finance_webhook"


def post_webhook(alert: FinanceAlert, conn_id: str = FINANCE_WEBHOOK_CONN_ID, *, timeout: float = 30.0,
                 idempotency_key: str | None = None) -> int:  # fmt: skip
    """Deliver the alert; return the HTTP status. Raises AlertDeliveryError on a non-2xx answer.

    ``idempotency_key`` (header ``Idempotency-Key``) is the delivery's identity: a post resent after a worker died
    between the receiver's answer and our record carries the same key, so a receiver can drop the repeat."""
    conn = get_connection(conn_id)
    url = conn.base_url(default_scheme="https")
    headers = {"Content-Type": "application/json", "User-Agent": "closeout-alerts"}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    if conn.password:
        headers["Authorization"] = f"Bearer {conn.password}"
    faults.point("alert.webhook.before_send")
    try:
        response = requests.post(url, json=alert.payload, headers=headers, timeout=timeout)
    except requests.RequestException as exc:
        raise AlertDeliveryError(f"webhook {conn_id!r} unreachable: {type(exc).__name__}") from None
    if not response.ok:
        raise AlertDeliveryError(f"webhook {conn_id!r} answered HTTP {response.status_code}")
    faults.point("alert.webhook.after_send")
    return response.status_code
