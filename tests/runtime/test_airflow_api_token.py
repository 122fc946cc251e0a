"""The ``airflow_api`` connection also accepts a pre-issued token (deployments without password login): proven
against a real ``airflow api-server``; a refused token is a clear error that never shows the token."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gate"))
import gate_support
from closeout.gate.airflow_api import AirflowApiAuthError, AirflowApiHook
from gate_support import TEST_DAG

api_server, airflow_api = gate_support.api_server, gate_support.airflow_api


def _conn(monkeypatch: pytest.MonkeyPatch, **fields) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_AIRFLOW_API", json.dumps({"conn_type": "http", **fields}))


def test_token_in_extra_pauses_without_a_login(airflow_api, monkeypatch) -> None:
    token = airflow_api.token()  # issued outside closeout, as an identity provider would
    _conn(monkeypatch, host=airflow_api.url, extra={"token": token})
    assert AirflowApiHook().pause_dag(TEST_DAG) is True
    assert airflow_api.is_paused(TEST_DAG) is True


def test_token_as_password_with_empty_login(airflow_api, monkeypatch) -> None:
    _conn(monkeypatch, host=airflow_api.url, password=airflow_api.token())
    hook = AirflowApiHook()
    assert hook.is_paused(TEST_DAG) is False
    assert hook.pause_dag(TEST_DAG) is True


def test_a_refused_token_is_a_clear_error_without_the_token(airflow_api, monkeypatch, caplog) -> None:
    forged = "eyJhbGciOiJIUzUxMiJ9.eyJzdWIiOiJub2JvZHkifQ.not-a-signature"
    _conn(monkeypatch, host=airflow_api.url, extra={"token": forged})
    with pytest.raises(AirflowApiAuthError) as error:
        AirflowApiHook().pause_dag(TEST_DAG)
    assert "pre-issued token" in str(error.value) and "airflow_api" in str(error.value)
    assert forged not in str(error.value) and forged not in caplog.text
    assert airflow_api.is_paused(TEST_DAG) is False


def test_no_login_and_no_token_says_both_ways(monkeypatch) -> None:
    _conn(monkeypatch, host="http://127.0.0.1:9")
    with pytest.raises(AirflowApiAuthError, match="pre-issued token"):
        AirflowApiHook().pause_dag(TEST_DAG)
