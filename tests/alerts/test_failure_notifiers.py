"""Failure notifiers on real DAG runs (``dag.test``) against real receivers: the platform webhook, and for
money DAGs finance's SMTP server and webhook (tests/gate/gate_support.py). Two failures of the same cause
send one alert per channel, another cause sends again, a success resolves the cause, a receiver that is
down leaves the task's failure as it was and is tried again alone on the next failure of that cause."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gate"))
import gate_support
from gate_support import SMTP_LOGIN, WEBHOOK_TOKEN, HttpReceiver

pytestmark = pytest.mark.integration

smtp, hook_receiver, finance_conns = gate_support.smtp, gate_support.hook_receiver, gate_support.finance_conns
PLATFORM_TOKEN = "plat-bearer-77aa55cc"


@pytest.fixture
def platform(monkeypatch: pytest.MonkeyPatch):
    receiver = HttpReceiver().start()
    monkeypatch.setenv("AIRFLOW_CONN_PLATFORM_WEBHOOK", json.dumps(
        {"conn_type": "http", "host": receiver.url.replace("/finance", "/platform"), "password": PLATFORM_TOKEN}))
    monkeypatch.setenv("CLOSEOUT_TASK_RETRIES", "0")  # read when the DAG file is parsed: fail on the first try
    yield receiver
    receiver.stop()


def _deliveries(warehouse) -> list[tuple]:
    return warehouse.rows(
        "SELECT dag_id, task_id, channel, status, attempts, occurrences FROM closeout.alerts_sent "
        "ORDER BY cause_id, channel"
    )


def _bad_billing_config(path: Path, grouping: str) -> Path:
    path.write_text(f"defaults: {{grouping: {grouping}}}\nclients: []\n")
    return path


def test_platform_hears_once_per_cause_and_again_after_a_success(
    warehouse, run_dag, platform, smtp, hook_receiver, finance_conns, tmp_path, monkeypatch
) -> None:
    config = _bad_billing_config(tmp_path / "clients.yaml", "per_hour")
    monkeypatch.setenv("CLOSEOUT_BILLING_CONFIG", str(config))

    first = run_dag("closeout_invoice_drafts")
    assert first.state == "failed" and first.task_states["load_billing_config"] == "failed", first
    [request] = platform.requests
    assert request["path"] == "/hooks/platform" and request["headers"]["Authorization"] == f"Bearer {PLATFORM_TOKEN}"
    alert = request["json"]
    assert alert["event"] == "task_failed" and alert["audience"] == "platform"
    assert (alert["dag_id"], alert["task_id"], alert["run_id"]) == ("closeout_invoice_drafts", "load_billing_config",
                                                                    first.run_id)  # fmt: skip
    assert "BillingConfigError" in alert["exception_type"] and "per_hour" in alert["message"]
    assert alert["money"] is False and alert["evidence"] == "closeout.draft_runs, closeout.billing_exceptions"
    for needed in ("DAG:       closeout_invoice_drafts", "Step:      load_billing_config", "grouping",
                   "closeout.billing_exceptions", "once per cause"):  # fmt: skip
        assert needed in alert["text"], needed
    assert smtp.messages == [] and hook_receiver.requests == [], "not a money DAG: finance hears nothing"

    # the same cause again: counted, not sent
    assert run_dag("closeout_invoice_drafts").state == "failed"
    assert len(platform.requests) == 1
    assert _deliveries(warehouse) == [("closeout_invoice_drafts", "load_billing_config", "platform_webhook", "sent",
                                       1, 2)]  # fmt: skip

    # another cause: another alert
    _bad_billing_config(config, "per_minute")
    assert run_dag("closeout_invoice_drafts").state == "failed"
    assert len(platform.requests) == 2 and "per_minute" in platform.requests[1]["json"]["message"]

    # fixed: the task succeeds and resolves its causes; the first break again is news again
    monkeypatch.delenv("CLOSEOUT_BILLING_CONFIG")
    green = run_dag("closeout_invoice_drafts")
    assert green.task_states["load_billing_config"] == "success", green
    assert warehouse.scalar("SELECT count(*) FROM closeout.alert_causes WHERE resolved_at IS NULL") == 0
    monkeypatch.setenv("CLOSEOUT_BILLING_CONFIG", str(_bad_billing_config(config, "per_hour")))
    assert run_dag("closeout_invoice_drafts").state == "failed"
    assert len(platform.requests) == 3 and "per_hour" in platform.requests[2]["json"]["message"]
    assert smtp.messages == [] and hook_receiver.requests == []


def test_money_dag_failure_reaches_finance_once_and_a_down_receiver_masks_nothing(
    warehouse, run_dag, platform, smtp, hook_receiver, finance_conns
) -> None:
    platform.status = 503  # the platform receiver is down
    first = run_dag("closeout_payouts")
    assert first.state == "failed" and first.task_states["gate"] == "failed", first
    assert first.tries["gate"] == 1, "the notifier failing changed nothing about the task"
    [mail] = smtp.messages
    [finance_hook] = hook_receiver.requests
    assert len(platform.requests) == 1  # tried, answered 503
    subject = mail.message["Subject"]
    assert subject == "[closeout] closeout_payouts.gate failed: AirflowFailException <- PayoutsRefused"
    body = mail.body
    for needed in ("closeout_payouts", "Step:      gate", "no reconciliation has run", first.run_id,
                   "closeout.payout_runs, closeout.payout_items, closeout.payout_holds", "money"):  # fmt: skip
        assert needed in body, needed
    assert finance_hook["json"]["audience"] == "finance" and finance_hook["json"]["subject"] == subject
    for secret in (SMTP_LOGIN[1], WEBHOOK_TOKEN, PLATFORM_TOKEN):
        assert secret not in mail.raw.decode() and secret not in json.dumps(finance_hook["json"])
    rows = {r[2]: r[3:] for r in _deliveries(warehouse)}
    assert rows == {"finance_smtp": ("sent", 1, 1), "finance_webhook": ("sent", 1, 1),
                    "platform_webhook": ("failed", 1, 1)}  # fmt: skip
    error = warehouse.scalar("SELECT last_error FROM closeout.alerts_sent WHERE channel = 'platform_webhook'")
    assert "HTTP 503" in error and PLATFORM_TOKEN not in error

    # the receiver is back; the same cause fails again: platform gets its alert, finance nothing new
    platform.status = 200
    assert run_dag("closeout_payouts").state == "failed"
    assert len(platform.requests) == 2 and platform.requests[1]["json"]["dag_id"] == "closeout_payouts"
    assert len(smtp.messages) == 1 and len(hook_receiver.requests) == 1
    rows = {r[2]: r[3:] for r in _deliveries(warehouse)}
    assert rows == {"finance_smtp": ("sent", 1, 2), "finance_webhook": ("sent", 1, 2),
                    "platform_webhook": ("sent", 2, 2)}  # fmt: skip
