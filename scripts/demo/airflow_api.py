"""A real ``airflow api-server`` for the demo, started early in the background because it takes a while.

The payout gate pauses ``closeout_payouts`` through Airflow's REST API (tasks may not touch the metadata
database in Airflow 3), so the demo needs the same server an installation has. It shares the demo's SQLite
metadata, uses the simple auth manager with one user whose password is written to a file in the Airflow
home, and is stopped when the demo ends. The demo reads the paused state back through closeout's own
``closeout.gate.airflow_api.AirflowApiHook``; only the unpause (what ops do in the UI) is a call of its own.

(tests/gate/gate_support.py does the same for the tests; this copy keeps the demo free of test code.)
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

USER = "demo-ops"


class ApiServer:
    """``airflow dags reserialize`` then ``airflow api-server``, in a background thread from ``start()``.
    ``wait_serialized()`` blocks until the DAGs are in the metadata database (SQLite takes one writer: no DAG
    may run before), ``wait()`` until ``/api/v2/monitor/health`` answers."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.password = secrets.token_urlsafe(12)
        self.log_path = home / "api-server.log"
        self.url = ""
        self.process: subprocess.Popen | None = None
        self._failure: str | None = None
        self._ready = threading.Event()
        self._serialized = threading.Event()

    def env(self) -> dict[str, str]:
        passwords = self.home / "simple_auth_manager_passwords.json"
        passwords.write_text(json.dumps({USER: self.password}))
        return {
            **os.environ,
            "AIRFLOW__CORE__AUTH_MANAGER":
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:user",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        }  # fmt: skip

    def connection(self) -> str:
        """The ``airflow_api`` connection (JSON form) the gate uses to pause DAGs."""
        return json.dumps({"conn_type": "http", "host": self.url, "login": USER, "password": self.password})

    def start(self) -> ApiServer:
        threading.Thread(target=self._run, name="demo-api-server", daemon=True).start()
        return self

    def _run(self) -> None:
        try:
            env = self.env()
            airflow = [sys.executable, "-m", "airflow"]
            done = subprocess.run([*airflow, "dags", "reserialize"], env=env, capture_output=True, text=True,
                                  timeout=600)  # fmt: skip
            if done.returncode != 0:
                raise RuntimeError(f"airflow dags reserialize failed: {done.stderr[-2000:]}")
            self._serialized.set()
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            with self.log_path.open("wb") as log:
                self.process = subprocess.Popen(
                    [*airflow, "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                    env=env, stdout=log, stderr=subprocess.STDOUT,
                )  # fmt: skip
            self.url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and self.process.poll() is None:
                try:
                    if requests.get(f"{self.url}/api/v2/monitor/health", timeout=2).ok:
                        return
                except requests.RequestException:
                    pass
                time.sleep(0.5)
            raise RuntimeError(f"airflow api-server did not come up; see {self.log_path}")
        except Exception as exc:  # reported by wait(), in the main thread
            self._failure = str(exc)
        finally:
            self._serialized.set()
            self._ready.set()

    def wait_serialized(self, timeout: float = 300) -> None:
        if not self._serialized.wait(timeout) or (self._failure and not self.url):
            raise SystemExit(self._failure or f"airflow dags reserialize not done after {timeout:.0f} s")

    def wait(self, timeout: float = 300) -> ApiServer:
        started = time.perf_counter()
        if not self._ready.wait(timeout):
            raise SystemExit(f"airflow api-server not ready after {timeout:.0f} s; see {self.log_path}")
        if self._failure:
            raise SystemExit(self._failure)
        waited = time.perf_counter() - started
        if waited > 1:
            print(f"    (waited {waited:.0f} s for the API server to finish starting)")
        return self

    def set_paused(self, dag_id: str, paused: bool) -> None:
        """What ops do with the toggle in the UI, through the same REST API."""
        token = requests.post(f"{self.url}/auth/token", json={"username": USER, "password": self.password},
                              timeout=30)  # fmt: skip
        token.raise_for_status()
        response = requests.patch(
            f"{self.url}/api/v2/dags/{dag_id}", params={"update_mask": "is_paused"}, json={"is_paused": paused},
            headers={"Authorization": f"Bearer {token.json()['access_token']}"}, timeout=30,
        )  # fmt: skip
        response.raise_for_status()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
