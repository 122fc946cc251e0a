"""Helpers for the controls tests: login roles in the warehouse's group roles, and an Airflow API server with
several people (finance approvers, the person who triggers ``dag.test`` runs, an outsider).

The API server is a real ``airflow api-server`` subprocess sharing the tests' metadata database, like
``tests/gate/gate_support.py``'s, but with its own users; one per test process.
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gate"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "payouts"))
from gate_support import free_port

ENV_VAR = "AIRFLOW_CONN_CLOSEOUT_WAREHOUSE"
REQUESTER = "dag_test"  # the triggering user Airflow records for a dag.test run
FINANCE = ("ana", "ben")
OUTSIDER = "olaf"
PASSWORDS = {REQUESTER: "pw-req-1a2b", "ana": "pw-ana-3c4d", "ben": "pw-ben-5e6f", OUTSIDER: "pw-olaf-7a8b"}
_logins = itertools.count(1)


# -- warehouse logins -----------------------------------------------------------------------------------------
def _conn_fields() -> dict:
    return json.loads(os.environ[ENV_VAR])


def connect_as(login: str, **kwargs) -> psycopg.Connection:
    """A connection to the test's warehouse database as ``login`` (the embedded server trusts local logins; the
    role, and so the privileges, are the login's)."""
    fields = _conn_fields()
    return psycopg.connect(host=fields.get("host"), port=fields.get("port") or 5432, user=login,
                           dbname=fields["schema"], **kwargs)  # fmt: skip


def conn_json_as(login: str) -> str:
    """The ``closeout_warehouse`` connection as ``login``: what a deployment gives the DAGs."""
    return json.dumps({**_conn_fields(), "login": login, "password": None})


@contextmanager
def login_in(group: str) -> Iterator[str]:
    """A LOGIN role that is a member of ``group`` (closeout_pipeline or closeout_finance), dropped afterwards."""
    name = f"ctl_{group.removeprefix('closeout_')}_{os.getpid()}_{next(_logins)}"
    fields = _conn_fields()
    admin = psycopg.connect(host=fields.get("host"), port=fields.get("port") or 5432, user=fields.get("login"),
                            dbname="postgres", autocommit=True)  # fmt: skip
    with admin:
        admin.execute(f'CREATE ROLE "{name}" LOGIN IN ROLE {group}')
        try:
            yield name
        finally:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            _drop_role_when_gone(admin, name)


def _drop_role_when_gone(admin: psycopg.Connection, name: str, wait_seconds: float = 20.0) -> None:
    """Drop a login once its sessions have ended. A session ends asynchronously after its client closes or is
    terminated, and drops its temporary tables on the way out (drafting makes many): until then those tables
    depend on the role and DROP ROLE is refused, so a loaded machine saw it fail in cleanup."""
    deadline = time.monotonic() + wait_seconds
    while True:
        busy = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s", (name,)).fetchone()[0]
        try:
            if not busy:
                admin.execute(f'DROP ROLE IF EXISTS "{name}"')
                return
        except psycopg.errors.DependentObjectsStillExist:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            admin.execute(f'DROP ROLE IF EXISTS "{name}"')  # let Postgres say what still depends on it
            return
        time.sleep(0.1)


# -- the Airflow API server with people -----------------------------------------------------------------------
@dataclass
class PeopleApi:
    url: str
    process: subprocess.Popen
    log_path: Path

    def token(self, user: str) -> str:
        response = requests.post(f"{self.url}/auth/token", json={"username": user, "password": PASSWORDS[user]},
                                 timeout=30)  # fmt: skip
        assert response.status_code == 201, response.text
        return response.json()["access_token"]

    def headers(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user)}"}


def _start(home: Path, timeout: float = 120.0, *, all_admins: bool = False) -> PeopleApi:
    """``all_admins``: the simple auth manager lets every signed-in user answer any human-in-the-loop task (the
    kind of auth manager that lets admins answer anything), so closeout's own check of the answer is what stops
    a self-approval."""
    passwords = home / "controls_passwords.json"
    passwords.write_text(json.dumps(PASSWORDS))
    env = {
        **os.environ,
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:user" for u in PASSWORDS),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": str(all_admins),
        "AIRFLOW__API_AUTH__JWT_SECRET": "closeout-controls-tests-jwt-secret-0123456789abcdef",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
    }
    airflow = [sys.executable, "-m", "airflow"]
    if not all_admins:
        subprocess.run([*airflow, "dags", "reserialize"], env=env, check=True, capture_output=True, timeout=300)
    port = free_port()
    log_path = home / f"controls-api-server-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*airflow, "api-server", "--port", str(port), "--host", "127.0.0.1", "--workers", "1"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"api-server exited with {process.returncode}: {log_path.read_text()[-3000:]}")
        try:
            if requests.get(f"{url}/api/v2/monitor/health", timeout=2).status_code == 200:
                return PeopleApi(url, process, log_path)
        except requests.RequestException:
            pass
        time.sleep(0.5)
    process.terminate()
    raise RuntimeError(f"api-server did not answer within {timeout}s: {log_path.read_text()[-3000:]}")


_SHARED: dict[str, PeopleApi] = {}


def _stop(server: PeopleApi) -> None:
    server.process.terminate()
    try:
        server.process.wait(20)
    except Exception:
        server.process.kill()


def _shared(home: Path, key: str, all_admins: bool) -> PeopleApi:
    server = _SHARED.get(key)
    if server is None or server.process.poll() is not None:
        if all_admins:
            _shared(home, "server", False)  # serializes the DAGs first
        server = _SHARED[key] = _start(home, all_admins=all_admins)
        atexit.register(_stop, server)
    return server


@pytest.fixture(scope="session")
def people_api(airflow_db: Path) -> PeopleApi:
    return _shared(airflow_db, "server", False)


@pytest.fixture(scope="session")
def lenient_api(airflow_db: Path) -> PeopleApi:
    """An API server whose auth manager lets any signed-in user answer any approval."""
    return _shared(airflow_db, "lenient", True)
