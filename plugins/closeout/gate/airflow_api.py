"""Pause a DAG through the Airflow 3 public REST API (the ``airflow_api`` connection).

Tasks cannot touch the metadata database in Airflow 3, so pausing ``closeout_payouts`` goes through the
API server like any other client: ``POST /auth/token`` with the connection's login/password (201 with an
``access_token``), then ``PATCH /api/v2/dags/{dag_id}?update_mask=is_paused`` with the bearer token.
Neither the password nor the token is ever logged or put in an exception message.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import requests

from closeout.connections import ConnectionInfo, get_connection

AIRFLOW_API_CONN_ID = "airflow_api"
log = logging.getLogger(__name__)


class AirflowApiError(RuntimeError):
    """The API server refused or failed a call; the message says what to check, without secrets."""


class AirflowApiAuthError(AirflowApiError):
    """The login/password of the ``airflow_api`` connection were refused."""


class AirflowApiHook:
    """The protocol of the Airflow REST API calls closeout makes: token, pause, read paused state."""

    def __init__(self, conn_id: str = AIRFLOW_API_CONN_ID, *, timeout: float = 30.0) -> None:
        self.conn_id = conn_id
        self.timeout = timeout
        self._conn: ConnectionInfo | None = None
        self._token: str | None = None
        self._session = requests.Session()

    @property
    def conn(self) -> ConnectionInfo:
        if self._conn is None:
            self._conn = get_connection(self.conn_id)
        return self._conn

    @property
    def base_url(self) -> str:
        return self.conn.base_url(default_scheme="http")

    def _token_value(self) -> str:
        if self._token is None:
            self._token = self._fetch_token()
        return self._token

    def _preissued_token(self) -> str | None:
        """A token issued outside closeout (deployments without password login): extra ``token``, or the
        password when the login is empty."""
        conn = self.conn
        token = conn.extra.get("token") or (conn.password if not conn.login else None)
        return str(token).strip() or None if token else None

    def _fetch_token(self) -> str:
        conn = self.conn
        preissued = self._preissued_token()
        if preissued:
            return preissued
        if not conn.login or not conn.password:
            raise AirflowApiAuthError(
                f"connection {self.conn_id!r} needs a login and a password of a user allowed to pause DAGs, "
                "or a pre-issued token (extra 'token', or the password with an empty login)"
            )
        url = f"{self.base_url}/auth/token"
        try:
            response = self._session.post(
                url, json={"username": conn.login, "password": conn.password}, timeout=self.timeout
            )
        except requests.RequestException as exc:
            raise AirflowApiError(f"cannot reach the Airflow API server at {url}: {type(exc).__name__}") from None
        if response.status_code in (401, 403):
            raise AirflowApiAuthError(
                f"the Airflow API server at {self.base_url} refused the login {conn.login!r} "
                f"(HTTP {response.status_code}): check the login/password of connection {self.conn_id!r}"
            )
        if response.status_code not in (200, 201):
            raise AirflowApiError(f"POST {url} answered HTTP {response.status_code}: {_detail(response)}")
        token = response.json().get("access_token")
        if not token:
            raise AirflowApiError(f"POST {url} answered without an access_token")
        return token

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = f"{self.base_url}{path}"
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {self._token_value()}", "Accept": "application/json"}
            try:
                response = self._session.request(method, url, headers=headers, timeout=self.timeout, **kwargs)
            except requests.RequestException as exc:
                raise AirflowApiError(f"cannot reach the Airflow API server at {url}: {type(exc).__name__}") from None
            if response.status_code == 401 and self._preissued_token():
                raise AirflowApiAuthError(
                    f"{method} {path}: the Airflow API server refused the pre-issued token of connection "
                    f"{self.conn_id!r} (HTTP 401: expired or revoked?): issue a new one"
                )
            if response.status_code == 401 and attempt == 1:
                self._token = None  # expired token: fetch a new one once
                continue
            break
        if response.status_code == 403:
            who = f"the user {self.conn.login!r}" if self.conn.login else "the holder of the pre-issued token"
            raise AirflowApiAuthError(
                f"{method} {path}: {who} of connection {self.conn_id!r} may not do this (HTTP 403) "
                "(the simple auth manager's 'user' role or higher may pause DAGs)"
            )
        if response.status_code == 404:
            raise AirflowApiError(f"{method} {path}: the Airflow API server does not know this DAG (HTTP 404)")
        if not response.ok:
            raise AirflowApiError(f"{method} {path} answered HTTP {response.status_code}: {_detail(response)}")
        return response

    def pause_dag(self, dag_id: str) -> bool:
        """Pause the DAG (idempotent); return its paused state as the server reports it after the call."""
        response = self._request(
            "PATCH", f"/api/v2/dags/{quote(dag_id, safe='')}", params={"update_mask": "is_paused"},
            json={"is_paused": True},
        )  # fmt: skip
        paused = bool(response.json().get("is_paused"))
        log.info("paused DAG %s through %s: is_paused=%s", dag_id, self.base_url, paused)
        return paused

    def is_paused(self, dag_id: str) -> bool:
        return bool(self._request("GET", f"/api/v2/dags/{quote(dag_id, safe='')}").json().get("is_paused"))


def _detail(response: requests.Response) -> str:
    """The server's error detail, short; the API never echoes credentials back."""
    try:
        body = response.json()
        detail = body.get("detail", body) if isinstance(body, dict) else body
    except ValueError:
        detail = response.text
    return str(detail)[:300]


def pause_dag(dag_id: str = "closeout_payouts", conn_id: str = AIRFLOW_API_CONN_ID) -> bool:
    return AirflowApiHook(conn_id).pause_dag(dag_id)
