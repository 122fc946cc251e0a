"""A real multi-worker Airflow 3 on this machine, for the deployment test and the distribution benchmark.

What a platform team runs, one process each: ``airflow api-server``, ``scheduler``, ``dag-processor``,
``triggerer`` and two ``airflow celery worker``s, with the CeleryExecutor, Redis (Debian's ``redis-server``, on a
free loopback port) as the broker and a Postgres database as the metadata database (Airflow 3's Celery setup
needs one that several processes can share; SQLite is refused). Each worker gets its own ``AIRFLOW_HOME``,
working directory, ``HOME``, ``TMPDIR`` and log folder, and reports its own host name (``[core]
hostname_callable`` = ``machine_name`` below), as separate machines would: whatever one task leaves on its
worker's disk, a task on the other cannot see.

The caller passes the environment the chain needs (connections as ``AIRFLOW_CONN_*``, ``CLOSEOUT_*``
settings); the harness adds only ``AIRFLOW_CONN_AIRFLOW_API``, pointing at its own API server (the payout gate
pauses DAGs and the close sets run notes through it). DAGs are triggered and watched through the public REST API with a
JWT from ``/auth/token`` (simple auth manager user), as an operator's script would.

Bounded: every wait has a deadline; every process runs in its own process group, and ``stop`` terminates then
kills each group, whatever happened; ``logs_tail`` gives the end of every process's log for a failure report.
Imports at module level are the standard library only (``machine_name`` is imported by the workers' Airflow).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
API_USER, API_PASSWORD = "operator", "pw-deploy-4b1e7d"
JWT_SECRET = "closeout-deployment-jwt-secret-" + "0123456789abcdef" * 3  # 64+ bytes: SHA512 HMAC
MACHINE_ENV = "CLOSEOUT_MACHINE_NAME"
TERMINAL = {"success", "failed"}


def machine_name() -> str:
    """The host name a worker reports on its task instances (``[core] hostname_callable``): its own machine's."""
    return os.environ.get(MACHINE_ENV) or socket.getfqdn()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until(check, timeout: float, what: str, interval: float = 0.5, on_timeout=None):
    """Poll ``check`` until it returns something truthy; raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            detail = on_timeout() if on_timeout else ""
            raise TimeoutError(f"{what}: not within {timeout:.0f} s {detail}")
        time.sleep(interval)


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None


@dataclass
class Postgres:
    """Where the metadata database is created: host (a socket folder or an address), port, superuser."""

    host: str
    port: int
    user: str = "postgres"
    password: str | None = None

    @classmethod
    def from_conn(cls, conn: dict[str, Any]) -> Postgres:
        return cls(str(conn.get("host")), int(conn.get("port") or 5432), conn.get("login") or "postgres",
                   conn.get("password") or None)  # fmt: skip

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                             dbname="postgres", autocommit=True) as conn:  # fmt: skip
            conn.execute(sql)

    def sqlalchemy_url(self, database: str) -> str:
        auth = quote(self.user, safe="") + (f":{quote(self.password, safe='')}" if self.password else "")
        if self.host.startswith("/"):
            return f"postgresql+psycopg2://{auth}@/{database}?host={quote(self.host, safe='/')}&port={self.port}"
        return f"postgresql+psycopg2://{auth}@{self.host}:{self.port}/{database}"


@dataclass
class Cluster:
    """The running deployment. Build it with ``start_cluster``; always ``stop`` it (a context manager does)."""

    root: Path
    env: dict[str, str]
    postgres: Postgres
    metadata_db: str
    api_url: str = ""
    processes: list[Process] = field(default_factory=list)
    workers: list[str] = field(default_factory=list)
    _token: str | None = None
    _token_at: float = 0.0

    # -- processes -------------------------------------------------------------------------------------------
    def spawn(self, name: str, args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> Process:
        log = self.root / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            popen = subprocess.Popen(args, env=env or self.env, cwd=str(cwd or self.root), stdout=out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)  # fmt: skip
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    def airflow(self, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> str:
        """A one-shot ``airflow`` command (migrate, pools, reserialize); raises with its output on failure."""
        done = subprocess.run([sys.executable, "-m", "airflow", *args], env=env or self.env, cwd=str(self.root),
                              capture_output=True, text=True, timeout=timeout, check=False)  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} exited {done.returncode}:\n{done.stdout[-3000:]}\n"
                               f"{done.stderr[-3000:]}")  # fmt: skip
        return done.stdout

    def check_alive(self) -> None:
        dead = [f"{p.name} (exit {p.popen.returncode})" for p in self.processes if not p.alive()]
        if dead:
            raise RuntimeError(f"deployment process(es) exited: {', '.join(dead)}\n{self.logs_tail()}")

    def stop(self) -> None:
        """Terminate every process group, then kill what is left; drop the metadata database."""
        for process in reversed(self.processes):
            _signal_group(process.popen, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in reversed(self.processes):
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.popen.wait(max(0.1, deadline - time.monotonic()))
            _signal_group(process.popen, signal.SIGKILL)  # children of an exited leader too
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.popen.wait(5)
        try:
            self.postgres.admin(f'DROP DATABASE IF EXISTS "{self.metadata_db}" WITH (FORCE)')
        except Exception as exc:  # a stopped server: nothing to drop
            print(f"could not drop {self.metadata_db}: {exc}", file=sys.stderr)

    def logs_tail(self, chars: int = 4000) -> str:
        parts = []
        for path in sorted((self.root / "logs").glob("*.log")):
            text = path.read_text(errors="replace")
            parts.append(f"----- {path.name} (last {chars} chars) -----\n{text[-chars:]}")
        return "\n".join(parts)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- REST API --------------------------------------------------------------------------------------------
    def token(self) -> str:
        import requests

        if self._token is None or time.monotonic() - self._token_at > 600:
            got = requests.post(f"{self.api_url}/auth/token", json={"username": API_USER, "password": API_PASSWORD},
                                timeout=30)  # fmt: skip
            if got.status_code != 201:
                raise RuntimeError(f"/auth/token answered {got.status_code}: {got.text[:300]}")
            self._token, self._token_at = got.json()["access_token"], time.monotonic()
        return self._token

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        import requests

        got = requests.request(method, f"{self.api_url}/api/v2{path}", timeout=30,
                               headers={"Authorization": f"Bearer {self.token()}"}, **kwargs)  # fmt: skip
        if got.status_code >= 300:
            raise RuntimeError(f"{method} {path} answered {got.status_code}: {got.text[:500]}")
        return got.json() if got.content else None

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.api("PATCH", f"/dags/{dag_id}", params={"update_mask": "is_paused"}, json={"is_paused": paused})

    def is_paused(self, dag_id: str) -> bool:
        return bool(self.api("GET", f"/dags/{dag_id}")["is_paused"])

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        from datetime import UTC, datetime

        body = {"logical_date": datetime.now(UTC).isoformat(), "conf": conf or {}}
        return self.api("POST", f"/dags/{dag_id}/dagRuns", json=body)["dag_run_id"]

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.api("GET", f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return self.api("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        got = self.api("GET", f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances",
                       params={"limit": 1000})  # fmt: skip
        return got["task_instances"]

    def wait(self, dag_id: str, run_id: str, timeout: float = 180) -> dict[str, Any]:
        """Wait for a run to end (success or failed); the run's record. Raises on timeout or a dead process."""

        def ended() -> dict[str, Any] | None:
            self.check_alive()
            run = self.run(dag_id, run_id)
            return run if run["state"] in TERMINAL else None

        def states() -> str:
            return json.dumps({t["task_id"]: t["state"] for t in self.task_instances(dag_id, run_id)})

        return _wait_until(ended, timeout, f"{dag_id} run {run_id}", interval=1.0, on_timeout=states)

    def trigger_and_wait(self, dag_id: str, conf: dict[str, Any] | None = None,
                         timeout: float = 180) -> tuple[dict[str, Any], list[dict[str, Any]]]:  # fmt: skip
        run_id = self.trigger(dag_id, conf)
        run = self.wait(dag_id, run_id, timeout)
        return run, self.task_instances(dag_id, run_id)


def _signal_group(popen: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(popen.pid, sig)  # the session leader's pid is its group's id (start_new_session)


def _base_env(extra: dict[str, str], postgres: Postgres, metadata_db: str, redis_port: int,
              api_port: int, home: Path) -> dict[str, str]:  # fmt: skip
    """What every Airflow process of the deployment shares (the platform's airflow.cfg, as environment)."""
    own = ("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_")  # the test process's SQLite Airflow is not this one
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(own)}
    passwords = home / "simple_auth_passwords.json"
    passwords.write_text(json.dumps({API_USER: API_PASSWORD}))
    env = {
        **inherited,
        "AIRFLOW_HOME": str(home),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(HERE)]),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__PARALLELISM": "8",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",  # nothing runs on a schedule unless unpaused
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "airflow_cluster.machine_name",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{API_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API_AUTH__JWT_SECRET": JWT_SECRET,
        "AIRFLOW__API__SECRET_KEY": "closeout-deployment-api-secret",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": postgres.sqlalchemy_url(metadata_db),
        "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + postgres.sqlalchemy_url(metadata_db),
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
        "AIRFLOW__CELERY__SYNC_PARALLELISM": "1",
        "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "task-logs"),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__TRIGGERER__CAPACITY": "50",
        # the API client tasks use to pause DAGs and set run notes (closeout's `airflow_api` connection)
        "AIRFLOW_CONN_AIRFLOW_API": json.dumps({"conn_type": "http", "host": f"http://127.0.0.1:{api_port}",
                                                "login": API_USER, "password": API_PASSWORD}),
    }
    env.update(extra)
    return env


def start_redis(root: Path, cluster: Cluster) -> int:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (Debian: apt-get install redis-server)")
    port = free_port()
    data = root / "redis"
    data.mkdir(parents=True, exist_ok=True)
    cluster.spawn("redis", [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                            "--dir", str(data), "--protected-mode", "yes"])  # fmt: skip

    def answers() -> bool:
        cluster.check_alive()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    _wait_until(answers, 20, "redis-server", interval=0.1)
    return port


def start_cluster(root: Path, postgres: Postgres, extra_env: dict[str, str], *, workers: int = 2,
                  pools_file: Path | None = ROOT / "pools.json", timeout: float = 240) -> Cluster:  # fmt: skip
    """Start the whole deployment under ``root``; returns once the API server answers, the DAGs are serialized
    and every worker is registered with Celery. On any failure everything started is stopped again."""
    root.mkdir(parents=True, exist_ok=True)
    metadata_db = f"airflow_meta_{os.getpid()}_{int(time.time())}"
    postgres.admin(f'CREATE DATABASE "{metadata_db}"')
    home = root / "control-plane"
    home.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(root, {}, postgres, metadata_db)
    try:
        redis_port = start_redis(root, cluster)
        api_port = free_port()
        cluster.env = _base_env(extra_env, postgres, metadata_db, redis_port, api_port, home)
        cluster.api_url = f"http://127.0.0.1:{api_port}"
        cluster.airflow("db", "migrate")
        if pools_file is not None:
            cluster.airflow("pools", "import", str(pools_file))
        cluster.airflow("dags", "reserialize")
        py = [sys.executable, "-m", "airflow"]
        cluster.spawn("api-server", [*py, "api-server", "--host", "127.0.0.1", "--port", str(api_port),
                                     "--workers", "1"])  # fmt: skip
        cluster.spawn("scheduler", [*py, "scheduler"])
        cluster.spawn("dag-processor", [*py, "dag-processor"])
        cluster.spawn("triggerer", [*py, "triggerer"])
        for n in range(1, workers + 1):
            name = f"worker{n}"
            cluster.spawn(name, [*py, "celery", "worker", "--celery-hostname", f"{name}@%h", "--without-mingle",
                                 "--without-gossip"], env=worker_env(cluster.env, root / name, name),
                          cwd=root / name / "work")  # fmt: skip
            cluster.workers.append(name)

        def api_up() -> bool:
            import requests

            cluster.check_alive()
            try:
                return requests.get(f"{cluster.api_url}/api/v2/monitor/health", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        _wait_until(api_up, timeout, "api-server health", on_timeout=cluster.logs_tail)
        _wait_until(lambda: _workers_ready(cluster), timeout, "celery workers ready", on_timeout=cluster.logs_tail)
    except BaseException:
        print(cluster.logs_tail(), file=sys.stderr)
        cluster.stop()
        raise
    return cluster


def worker_env(base: dict[str, str], machine: Path, name: str) -> dict[str, str]:
    """A worker as its own machine: own AIRFLOW_HOME, HOME, TMPDIR, working directory, task logs, log-server
    port and host name."""
    for sub in ("airflow", "home", "tmp", "work"):
        (machine / sub).mkdir(parents=True, exist_ok=True)
    return {
        **base,
        "AIRFLOW_HOME": str(machine / "airflow"),
        "HOME": str(machine / "home"),
        "TMPDIR": str(machine / "tmp"),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(machine / "task-logs"),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        MACHINE_ENV: f"{name}.closeout.test",
    }


def _workers_ready(cluster: Cluster) -> bool:
    """Every worker's log says Celery is ready (``celery@<name> ready.``)."""
    cluster.check_alive()
    for name in cluster.workers:
        log = cluster.root / "logs" / f"{name}.log"
        if " ready." not in log.read_text(errors="replace"):
            return False
    return True


def hosts_of(task_instances: Iterable[dict[str, Any]]) -> set[str]:
    return {t.get("hostname") or "" for t in task_instances if t.get("state") == "success"}
