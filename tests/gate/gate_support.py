"""Local receivers for the gate tests, standard library only: a small SMTP server over a real socket
(EHLO, AUTH PLAIN, MAIL, RCPT, DATA) and an HTTP server recording POSTed JSON; plus the Airflow API
server started as a real subprocess, and the pytest fixtures over them.

Other test folders reuse the fixtures by importing them (``sys.path`` + ``from gate_support import ...``);
the API server is started once per process whichever module's fixture asks first.
"""

from __future__ import annotations

import atexit
import base64
import email
import email.policy
import json
import os
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- SMTP -------------------------------------------------------------------------------------------
@dataclass
class ReceivedMail:
    mail_from: str
    rcpt_to: list[str]
    raw: bytes
    auth: tuple[str, str] | None

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.raw, policy=email.policy.default)  # type: ignore[return-value]

    @property
    def body(self) -> str:
        return self.message.get_content()


class _SmtpHandler(socketserver.StreamRequestHandler):
    server: _SmtpServer

    def _reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self) -> None:
        self._reply("220 localhost closeout-test-smtp")
        mail_from, rcpts, auth = "", [], None
        while True:
            raw = self.rfile.readline()
            if not raw:
                return
            line = raw.decode().rstrip("\r\n")
            verb = line.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                self.wfile.write(b"250-localhost\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n")
                self.wfile.flush()
            elif verb == "AUTH":
                parts = line.split()
                blob = parts[2] if len(parts) > 2 else None
                if blob is None:
                    self._reply("334 ")
                    blob = self.rfile.readline().decode().strip()
                _, user, password = base64.b64decode(blob).decode().split("\x00")
                if (user, password) != self.server.credentials:
                    self._reply("535 5.7.8 authentication failed")
                    continue
                auth = (user, password)
                self._reply("235 2.7.0 ok")
            elif verb == "MAIL":
                if self.server.credentials and auth is None:
                    self._reply("530 5.7.0 authentication required")
                    continue
                mail_from, rcpts = line.split(":", 1)[1].strip().split()[0].strip("<>"), []
                self._reply("250 ok")
            elif verb == "RCPT":
                rcpts.append(line.split(":", 1)[1].strip().strip("<>"))
                self._reply("250 ok")
            elif verb == "DATA":
                self._reply("354 end with <CRLF>.<CRLF>")
                chunks = []
                while True:
                    data = self.rfile.readline()
                    if data in (b".\r\n", b".\n", b""):
                        break
                    chunks.append(data[1:] if data.startswith(b"..") else data)
                self.server.messages.append(ReceivedMail(mail_from, rcpts, b"".join(chunks), auth))
                self._reply("250 ok queued")
            elif verb in ("RSET", "NOOP"):
                self._reply("250 ok")
            elif verb == "QUIT":
                self._reply("221 bye")
                return
            else:
                self._reply("502 not implemented")


class _SmtpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, credentials: tuple[str, str] | None) -> None:
        super().__init__(("127.0.0.1", 0), _SmtpHandler)
        self.credentials = credentials
        self.messages: list[ReceivedMail] = []


class SmtpReceiver:
    def __init__(self, credentials: tuple[str, str] | None = None) -> None:
        self.server = _SmtpServer(credentials)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def messages(self) -> list[ReceivedMail]:
        return self.server.messages

    def start(self) -> SmtpReceiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- HTTP webhook -------------------------------------------------------------------------------------
@dataclass
class HttpReceiver:
    status: int = 200
    requests: list[dict] = field(default_factory=list)

    def start(self) -> HttpReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append({"path": self.path, "headers": dict(self.headers), "json": json.loads(body)})
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/finance"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- Airflow API server ----------------------------------------------------------------------------------
API_USER = "pauser"
API_PASSWORD = "pw-gate-7f3c9e1a"


@dataclass
class ApiServer:
    url: str
    process: subprocess.Popen
    log_path: Path

    def token(self, user: str = API_USER, password: str = API_PASSWORD) -> str:
        response = requests.post(f"{self.url}/auth/token", json={"username": user, "password": password}, timeout=30)
        assert response.status_code == 201, response.text
        return response.json()["access_token"]

    def set_paused(self, dag_id: str, paused: bool) -> None:
        response = requests.patch(
            f"{self.url}/api/v2/dags/{dag_id}",
            params={"update_mask": "is_paused"},
            json={"is_paused": paused},
            headers={"Authorization": f"Bearer {self.token()}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text

    def is_paused(self, dag_id: str) -> bool:
        response = requests.get(
            f"{self.url}/api/v2/dags/{dag_id}", headers={"Authorization": f"Bearer {self.token()}"}, timeout=30
        )
        assert response.status_code == 200, response.text
        return response.json()["is_paused"]


def api_server_env(home: Path) -> dict[str, str]:
    passwords = home / "gate_simple_auth_passwords.json"
    passwords.write_text(json.dumps({API_USER: API_PASSWORD}))
    return {
        **os.environ,
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{API_USER}:user",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API_AUTH__JWT_SECRET": "closeout-gate-tests-jwt-secret-0123456789abcdef",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
    }


def start_api_server(home: Path, timeout: float = 120.0) -> ApiServer:
    """Serialize the shipped DAGs, then run ``airflow api-server`` on a free port until it answers."""
    env = api_server_env(home)
    airflow = [sys.executable, "-m", "airflow"]
    subprocess.run([*airflow, "dags", "reserialize"], env=env, check=True, capture_output=True, timeout=300)
    port = free_port()
    log_path = home / f"gate-api-server-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*airflow, "api-server", "--port", str(port), "--host", "127.0.0.1", "--workers", "1"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"api-server exited with {process.returncode}: {log_path.read_text()[-3000:]}")
        try:
            if requests.get(f"{url}/api/v2/monitor/health", timeout=2).status_code == 200:
                return ApiServer(url, process, log_path)
        except requests.RequestException:
            pass
        time.sleep(0.5)
    process.terminate()
    raise RuntimeError(f"api-server did not answer within {timeout}s: {log_path.read_text()[-3000:]}")


_SHARED: dict[str, ApiServer] = {}


def _stop(server: ApiServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(20)
    except Exception:
        server.process.kill()


def shared_api_server(home: Path) -> ApiServer:
    """One API server per process, stopped at exit: every module that needs it gets the same one."""
    server = _SHARED.get("server")
    if server is None or server.process.poll() is not None:
        server = _SHARED["server"] = start_api_server(home)
        atexit.register(_stop, server)
    return server


# -- fixtures -------------------------------------------------------------------------------------------------
SMTP_LOGIN = ("alerts@closeout.test", "smtp-secret-93a1b2")
WEBHOOK_TOKEN = "whk-bearer-5c6d7e8f"
TEST_DAG = "closeout_invoice_drafts"  # the gate tests pause this one; the pause is parameterised by dag_id


@pytest.fixture(scope="session")
def api_server(airflow_db: Path) -> ApiServer:
    return shared_api_server(airflow_db)


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
