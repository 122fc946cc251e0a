"""Crash matrix, failure alerts: the worker running a money DAG's failure notifier is killed (SIGKILL) just
before an alert is handed to the receiver, and just after the receiver accepted it and before the delivery is
recorded; the notifier then runs again for the same failure. Real receivers over sockets (the SMTP server and
HTTP receivers of tests/gate/gate_support.py) count what arrived.

Before the send, nothing reached the receiver: the retry delivers the alert once. After the send, no protocol
can tell the retry whether the receiver has it (SMTP and webhooks have no lookup), so the notifier sends again,
at least once, under the same identity (Message-ID, Idempotency-Key; ``closeout.alerts.notify.delivery_id``):
the receivers get one distinct alert per channel, and a receiver that drops a known Message-ID or key (as mail
systems do) delivers it once. The warehouse records one delivered alert per channel.
"""

from __future__ import annotations

import json

import pytest
from closeout.alerts import notify, routing
from closeout.alerts.failure import FailureFacts
from crash_support import die_at
from gate_support import HttpReceiver, finance_conns, hook_receiver, smtp  # noqa: F401 - fixtures

pytestmark = pytest.mark.integration

ALERT_POINTS = ["alert.webhook.before_send", "alert.webhook.after_send", "alert.email.before_send",
                "alert.email.after_send"]  # fmt: skip
FACTS = {"dag_id": "closeout_payouts", "task_id": "release", "run_id": "scheduled__crash", "try_number": 3,
         "map_index": None, "logical_date": None, "params": {}, "exception_type": "ReleaseIncomplete",
         "message": "2 transfers failed and stay pending for the retry (2 made)", "log_url": None}  # fmt: skip
NOTIFY = ("from closeout.alerts import notify, routing; from closeout.alerts.failure import FailureFacts; "
          f"notify._notify(FailureFacts(**{FACTS!r}), routing.channels_for({FACTS['dag_id']!r}))")  # fmt: skip


@pytest.fixture
def platform(monkeypatch: pytest.MonkeyPatch):
    receiver = HttpReceiver().start()
    monkeypatch.setenv("AIRFLOW_CONN_PLATFORM_WEBHOOK", json.dumps(
        {"conn_type": "http", "host": receiver.url.replace("/finance", "/platform"), "password": "plat-crash"}))
    yield receiver
    receiver.stop()


@pytest.mark.parametrize("point", ALERT_POINTS)
def test_a_notifier_killed_around_a_send_delivers_one_alert_per_channel(
    warehouse, smtp, hook_receiver, finance_conns, platform, point: str  # noqa: F811
) -> None:
    die_at(point, NOTIFY)
    # the first channel the point sits on is where the worker died: platform's webhook, or finance's e-mail
    died_on = "platform_webhook" if point.startswith("alert.webhook") else "finance_smtp"
    assert warehouse.rows("SELECT channel FROM closeout.alerts_sent WHERE status = 'sent'") == (
        [("platform_webhook",)] if died_on == "finance_smtp" else []
    ), "the deliveries before the crash are recorded, the one it interrupted is not"

    outcome = notify._notify(FailureFacts(**FACTS), routing.channels_for(FACTS["dag_id"]))
    assert outcome["channels"][died_on] == "sent" and set(outcome["channels"].values()) <= {"sent", "already_sent"}

    mail_ids = [m.message["Message-ID"] for m in smtp.messages]
    platform_keys = [r["headers"]["Idempotency-Key"] for r in platform.requests]
    finance_keys = [r["headers"]["Idempotency-Key"] for r in hook_receiver.requests]
    for channel, ids in (("finance_smtp", mail_ids), ("platform_webhook", platform_keys),
                         ("finance_webhook", finance_keys)):  # fmt: skip
        assert len(set(ids)) == 1, f"{channel}: one alert, whatever was resent: {ids}"
        resent = point.endswith("after_send") and channel == died_on
        assert len(ids) == (2 if resent else 1), f"{channel}: {ids}"
    assert mail_ids[0] == f"<{notify.delivery_id(outcome['cause_id'], outcome['fingerprint'], 'finance_smtp')}>"
    assert len({*mail_ids, *platform_keys, *finance_keys}) == 3, "each channel's alert has its own identity"

    assert warehouse.rows("SELECT channel, status FROM closeout.alerts_sent ORDER BY channel") == [
        ("finance_smtp", "sent"), ("finance_webhook", "sent"), ("platform_webhook", "sent")]  # fmt: skip
    assert warehouse.scalar("SELECT count(*) FROM closeout.alert_causes") == 1

    # the same cause failing again later sends nothing new
    notify._notify(FailureFacts(**FACTS), routing.channels_for(FACTS["dag_id"]))
    assert (len(smtp.messages), len(platform.requests), len(hook_receiver.requests)) == (
        len(mail_ids), len(platform_keys), len(finance_keys))  # fmt: skip
