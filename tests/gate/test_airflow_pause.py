"""Pausing through a real Airflow API server (subprocess, SimpleAuthManager with a configured user and
password file): the pause is visible through the API, a wrong password is a clear error."""

from __future__ import annotations

import json

import gate_support
import pytest
from closeout.gate.airflow_api import AirflowApiAuthError, AirflowApiError, AirflowApiHook
from gate_support import API_PASSWORD, API_USER, TEST_DAG

# fixtures (defined in gate_support so that other test folders can reuse them)
api_server, airflow_api = (
    gate_support.api_server,
    gate_support.airflow_api,
)


def test_pause_is_visible_through_the_api(airflow_api) -> None:
    assert airflow_api.is_paused(TEST_DAG) is False
    hook = AirflowApiHook()
    assert hook.pause_dag(TEST_DAG) is True
    assert airflow_api.is_paused(TEST_DAG) is True
    assert hook.pause_dag(TEST_DAG) is True  # idempotent
    assert hook.is_paused(TEST_DAG) is True


def test_wrong_password_is_a_clear_error(airflow_api, monkeypatch, caplog) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_AIRFLOW_API", json.dumps(
        {"conn_type": "http", "host": airflow_api.url, "login": API_USER, "password": "not-the-password"}))  # fmt: skip
    with pytest.raises(AirflowApiAuthError) as error:
        AirflowApiHook().pause_dag(TEST_DAG)
    message = str(error.value)
    assert "refused the login 'pauser'" in message and "airflow_api" in message and "HTTP 401" in message
    assert "not-the-password" not in message and "not-the-password" not in caplog.text
    assert airflow_api.is_paused(TEST_DAG) is False


def test_unknown_dag_and_token_never_logged(airflow_api, caplog) -> None:
    caplog.set_level("DEBUG")
    hook = AirflowApiHook()
    with pytest.raises(AirflowApiError, match="does not know this DAG"):
        hook.pause_dag("no_such_dag")
    hook.pause_dag(TEST_DAG)
    assert hook._token and hook._token not in caplog.text and API_PASSWORD not in caplog.text
