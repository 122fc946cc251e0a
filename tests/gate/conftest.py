"""Fixtures of the gate tests: the real Airflow API server (once per session), an SMTP and an HTTP
receiver per test, and the ``airflow_api``, ``finance_smtp`` and ``finance_webhook`` connections."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from gate_support import API_PASSWORD, API_USER, ApiServer, HttpReceiver, SmtpReceiver, start_api_server

SMTP_LOGIN = ("alerts@closeout.test", "smtp-secret-93a1b2")
WEBHOOK_TOKEN = "whk-bearer-5c6d7e8f"
TEST_DAG = "closeout_invoice_drafts"  # closeout_payouts does not exist yet; pause is parameterised


@pytest.fixture(scope="session")
def api_server(airflow_db: Path) -> Iterator[ApiServer]:
    server = start_api_server(airflow_db)
    yield server
    server.process.terminate()
    try:
        server.process.wait(20)
    except Exception:
        server.process.kill()


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    receiver = SmtpReceiver(credentials=SMTP_LOGIN).start()
    yield receiver
    receiver.stop()


@pytest.fixture
def hook_receiver() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def finance_conns(smtp: SmtpReceiver, hook_receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_FINANCE_SMTP", json.dumps(
        {"conn_type": "smtp", "host": "127.0.0.1", "port": smtp.port, "login": SMTP_LOGIN[0],
         "password": SMTP_LOGIN[1],
         "extra": {"from": "closeout@company.test", "to": ["ana@finance.test", "ben@finance.test"],
                   "starttls": False, "timeout": 10}}))  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_FINANCE_WEBHOOK", json.dumps(
        {"conn_type": "http", "host": hook_receiver.url, "password": WEBHOOK_TOKEN}))  # fmt: skip


@pytest.fixture
def airflow_api(api_server: ApiServer, monkeypatch: pytest.MonkeyPatch) -> ApiServer:
    monkeypatch.setenv("AIRFLOW_CONN_AIRFLOW_API", json.dumps(
        {"conn_type": "http", "host": api_server.url, "login": API_USER, "password": API_PASSWORD}))  # fmt: skip
    api_server.set_paused(TEST_DAG, False)
    return api_server
