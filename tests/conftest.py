"""Test harness: a temporary Airflow home (SQLite metadata, migrated once per session), the embedded
warehouse with a freshly migrated database per test, and a Harvest sandbox per test.

The environment is set at import time, before anything imports Airflow: Airflow reads its
configuration once, on first import.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="closeout-airflow-"))

os.environ.update(
    {
        "AIRFLOW_HOME": str(AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME / 'airflow.db'}",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "CLOSEOUT_RETRY_DELAY_SECONDS": "1",
        "CLOSEOUT_TASK_RETRIES": "2",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "plugins"), str(ROOT), os.environ.get("PYTHONPATH")])),
    }
)
for _path in (str(ROOT / "plugins"), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from closeout.warehouse.embedded import ENV_VAR, ensure_warehouse  # noqa: E402

_EXTERNAL_WAREHOUSE = os.environ.get(ENV_VAR)
_db_counter = itertools.count(1)


# -- warehouse --------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def warehouse_server() -> dict:
    """Connection fields of the server tests create their databases on."""
    if not _EXTERNAL_WAREHOUSE:
        data_dir = ROOT / ".closeout" / "pgdata-tests"
        ensure_warehouse(data_dir)
    base = json.loads(os.environ[ENV_VAR]) if os.environ[ENV_VAR].startswith("{") else None
    if base is None:
        pytest.skip("tests need AIRFLOW_CONN_CLOSEOUT_WAREHOUSE in JSON form (or none: embedded)")
    return base


def _admin_connect(server: dict):
    import psycopg

    return psycopg.connect(
        host=server.get("host"),
        port=server.get("port") or 5432,
        user=server.get("login"),
        password=server.get("password") or None,
        dbname="postgres",
        autocommit=True,
    )


@pytest.fixture(scope="session")
def template_database(warehouse_server: dict) -> str:
    """A database migrated once; each test clones it (CREATE DATABASE ... TEMPLATE is fast)."""
    import psycopg
    from closeout.warehouse.migrations import apply_migrations

    name = f"closeout_tpl_{os.getpid()}"
    with _admin_connect(warehouse_server) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(
        host=warehouse_server.get("host"),
        port=warehouse_server.get("port") or 5432,
        user=warehouse_server.get("login"),
        password=warehouse_server.get("password") or None,
        dbname=name,
    ) as conn:
        apply_migrations(conn)
    yield name
    with _admin_connect(warehouse_server) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def warehouse(warehouse_server: dict, template_database: str, monkeypatch: pytest.MonkeyPatch):
    """A fresh, migrated warehouse database for one test, exposed as ``closeout_warehouse``."""
    name = f"closeout_t{os.getpid()}_{next(_db_counter)}"
    with _admin_connect(warehouse_server) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    conn_json = json.dumps({**warehouse_server, "schema": name})
    monkeypatch.setenv(ENV_VAR, conn_json)
    yield Warehouse(name)
    with _admin_connect(warehouse_server) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Warehouse:
    """Small query helper for assertions (reads only)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def rows(self, query: str, params: tuple | dict | None = None) -> list[tuple]:
        from closeout.warehouse.db import connect

        with connect() as conn:
            return conn.execute(query, params).fetchall()

    def scalar(self, query: str, params: tuple | dict | None = None):
        rows = self.rows(query, params)
        return rows[0][0] if rows else None


# -- Harvest sandbox ----------------------------------------------------------------------------------
TODAY = date.today()


@pytest.fixture
def harvest(monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """A running Harvest sandbox (no rate limit unless a test sets one) wired to ``harvest_default``."""
    from sandbox.harvest import HarvestSandbox

    sandbox = HarvestSandbox(rate_limit=None)
    url = sandbox.start()
    monkeypatch.setenv(
        "AIRFLOW_CONN_HARVEST_DEFAULT",
        json.dumps(
            {
                "conn_type": "http",
                "host": url,
                "password": sandbox.token,
                "extra": {"account_id": sandbox.account_id, "max_requests": 0, "per_page": 50},
            }
        ),
    )
    yield sandbox
    sandbox.stop()


def set_harvest_extra(monkeypatch: pytest.MonkeyPatch, **extra) -> None:
    conn = json.loads(os.environ["AIRFLOW_CONN_HARVEST_DEFAULT"])
    conn["extra"].update(extra)
    monkeypatch.setenv("AIRFLOW_CONN_HARVEST_DEFAULT", json.dumps(conn))


# -- Airflow --------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Migrate the SQLite metadata database once and load the shipped pools file."""
    env = dict(os.environ)
    airflow = [sys.executable, "-m", "airflow"]
    subprocess.run([*airflow, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    subprocess.run(
        [*airflow, "pools", "import", str(ROOT / "pools.json")], env=env, check=True, capture_output=True, timeout=120
    )
    return AIRFLOW_HOME


def load_dag(dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / f"{dag_id}.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags[dag_id]


def run_dag_now(dag_id: str, conf: dict | None = None) -> DagRunResult:
    """Run a DAG in-process with ``dag.test`` (the metadata database must be migrated: ``airflow_db``)."""
    dag = load_dag(dag_id)
    dag_run = dag.test(run_conf=conf or {})
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        dr = session.query(DagRun).filter(DagRun.dag_id == dag_id, DagRun.run_id == dag_run.run_id).one()
        states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances(session=session)}
        tries = {ti.task_id: ti.try_number for ti in dr.get_task_instances(session=session)}
        return DagRunResult(dag_run.run_id, str(dr.state), states, tries)


@pytest.fixture
def run_dag(airflow_db: Path):
    """Run a DAG in-process with ``dag.test`` and return {task_id: state} plus the run's state."""
    return run_dag_now


class DagRunResult:
    def __init__(self, run_id: str, state: str, task_states: dict[str, str], tries: dict[str, int]) -> None:
        self.run_id = run_id
        self.state = state
        self.task_states = task_states
        self.tries = tries

    def __repr__(self) -> str:
        return f"DagRunResult({self.run_id}, {self.state}, {self.task_states}, tries={self.tries})"


# -- webhook receiver ------------------------------------------------------------------------------------
@pytest.fixture
def webhook_receiver(warehouse) -> Iterator[str]:
    """The receiver app (the one the API server mounts) served over real HTTP by uvicorn; events go to
    the test's warehouse inbox, secrets come from the tracker connections at request time."""
    import socket
    import threading
    import time

    import uvicorn
    from closeout.webhooks.app import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(5)


# -- Clockify and Toggl sandboxes ----------------------------------------------------------------------------
@pytest.fixture
def clockify(monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """A running Clockify sandbox (limits off) wired to ``clockify_default``."""
    from sandbox.clockify import ClockifySandbox

    sandbox = ClockifySandbox(limit=None)
    sandbox.start()
    monkeypatch.setenv("AIRFLOW_CONN_CLOCKIFY_DEFAULT", json.dumps(
        {"conn_type": "http", "host": sandbox.api_url, "password": sandbox.api_key,
         "extra": {"workspace_id": sandbox.workspace_id, "reports_url": sandbox.reports_url, "max_requests": 0,
                   "page_size": 100}}))  # fmt: skip
    yield sandbox
    sandbox.stop()


def set_conn_extra(monkeypatch: pytest.MonkeyPatch, conn_id: str, **extra) -> None:
    var = f"AIRFLOW_CONN_{conn_id.upper()}"
    conn = json.loads(os.environ[var])
    conn["extra"].update(extra)
    monkeypatch.setenv(var, json.dumps(conn))


@pytest.fixture
def toggl(monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """A running Toggl sandbox (quota and short-term limit off) wired to ``toggl_default``."""
    from sandbox.toggl import TogglSandbox

    sandbox = TogglSandbox(quota=None, short_term=None)
    sandbox.start()
    monkeypatch.setenv("AIRFLOW_CONN_TOGGL_DEFAULT", json.dumps(
        {"conn_type": "http", "host": sandbox.url, "password": sandbox.token,
         "extra": {"workspace_id": sandbox.workspace_id, "requests_per_hour": 0, "short_term": [0, 1],
                   "page_size": 100}}))  # fmt: skip
    yield sandbox
    sandbox.stop()


# -- Stripe sandbox ------------------------------------------------------------------------------------------
STRIPE_WEBHOOK_SECRET = "whsec_closeout_tests"


@pytest.fixture
def stripe_sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """A running Stripe sandbox wired to ``stripe_default``: no SDK network retries and a short timeout, so a
    fault reaches closeout's own retry path (the outbox and Airflow's task retry)."""
    from sandbox.stripe import StripeSandbox

    sandbox = StripeSandbox(webhook_secret=STRIPE_WEBHOOK_SECRET, seed=11)
    sandbox.start()
    monkeypatch.setenv("AIRFLOW_CONN_STRIPE_DEFAULT", json.dumps(
        {"conn_type": "http", "host": sandbox.url, "password": sandbox.secret_key,
         "extra": {"webhook_secret": STRIPE_WEBHOOK_SECRET, "max_network_retries": 0, "timeout": 5,
                   "concurrency": 2}}))  # fmt: skip
    yield sandbox
    sandbox.stop()
