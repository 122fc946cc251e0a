"""Serving the real receiver over real HTTP, and a raw HTTP client that sends what well-behaved clients won't.

The receiver is served by uvicorn (the ASGI server the Airflow API server runs on), either in a thread of
the test process (fast; shares the test's environment for connections) or in a subprocess of its own, so
its memory can be measured without the test's own allocations in it.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOGGL_SECRET = "toggl-subscription-secret"
CLOCKIFY_TOKEN = "clockify-webhook-token-abc123"
STRIPE_SECRET = "whsec_receiver_tests"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Served:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@contextmanager
def serve_in_thread(app, http: str = "auto") -> Iterator[Served]:
    """The app under uvicorn in a daemon thread of this process."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", http=http, access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    try:
        yield Served("127.0.0.1", port)
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def serve_in_subprocess(env: dict[str, str] | None = None, http: str = "auto") -> Iterator[tuple[Served, int]]:
    """The app as the API server would build it (``create_app()`` from the environment), in its own
    process; yields the address and the server's pid."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "closeout.webhooks.app:create_app", "--factory",
               "--host", "127.0.0.1", "--port", str(port), "--http", http, "--log-level", "warning",
               "--no-access-log"]  # fmt: skip
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "plugins"), str(ROOT), full_env.get("PYTHONPATH", "")])
    process = subprocess.Popen(command, cwd=ROOT, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    served = Served("127.0.0.1", port)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if request(served, "GET", "/health").status == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"receiver did not start: {process.stderr.read().decode(errors='replace')}")
            time.sleep(0.05)
        yield served, process.pid
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        process.stderr.close()


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float

    def json(self):
        return json.loads(self.body)


def _connect(served: Served, timeout: float) -> socket.socket:
    sock = socket.create_connection((served.host, served.port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _read_response(sock: socket.socket, started: float) -> Response:
    response = http.client.HTTPResponse(sock)
    response.begin()
    body = response.read()
    headers = {k.lower(): v for k, v in response.getheaders()}
    return Response(response.status, headers, body, time.monotonic() - started)


def request(
    served: Served,
    method: str,
    path: str,
    headers: Sequence[tuple[bytes | str, bytes | str]] = (),
    body: bytes = b"",
    *,
    timeout: float = 20,
) -> Response:
    """One request written byte for byte as given: header values may be any bytes (non-ASCII, latin-1,
    repeated names, huge), which ``requests`` and ``http.client`` refuse to send."""
    lines = [f"{method} {path} HTTP/1.1".encode(), f"Host: {served.host}:{served.port}".encode()]
    for name, value in headers:
        n = name.encode("latin-1") if isinstance(name, str) else name
        v = value.encode("latin-1") if isinstance(value, str) else value
        lines.append(n + b": " + v)
    if not any((n if isinstance(n, str) else n.decode("latin-1")).lower() == "content-length" for n, _ in headers):
        lines.append(f"Content-Length: {len(body)}".encode())
    lines.append(b"Connection: close")
    started = time.monotonic()
    with _connect(served, timeout) as sock:
        sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        return _read_response(sock, started)


@dataclass(frozen=True)
class Upload:
    response: Response | None
    sent_bytes: int


def stream_chunked(
    served: Served,
    path: str,
    total_bytes: int,
    headers: Sequence[tuple[str, str]] = (),
    *,
    chunk_bytes: int = 64 * 1024,
    body: bytes | None = None,
    timeout: float = 60,
) -> Upload:
    """A chunked upload of ``total_bytes`` (or of ``body``, cut in chunks) that stops sending as soon as the
    server answers or hangs up, then reads the answer (None if the server sent none)."""
    head = [f"POST {path} HTTP/1.1", f"Host: {served.host}:{served.port}", "Transfer-Encoding: chunked",
            *(f"{n}: {v}" for n, v in headers)]  # fmt: skip
    filler = b"[" + b"1," * (chunk_bytes // 2 - 1) + b"1"  # JSON-looking bytes, never a complete document
    if body is not None:
        total_bytes = len(body)

    def chunk_at(offset: int) -> bytes:
        return body[offset : offset + chunk_bytes] if body is not None else filler

    sent = 0
    started = time.monotonic()
    with _connect(served, timeout) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        try:
            while sent < total_bytes:
                readable, _, _ = select.select([sock], [], [], 0)
                if readable:
                    break  # the server answered (or closed) before the body was complete
                chunk = chunk_at(sent)
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                sent += len(chunk)
            else:
                sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            return Upload(_read_response(sock, started), sent)
        except (http.client.RemoteDisconnected, ConnectionResetError):
            return Upload(None, sent)


# -- signing ------------------------------------------------------------------------------------------
def toggl_headers(body: bytes, secret: str = TOGGL_SECRET) -> list[tuple[str, str]]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return [("X-Webhook-Signature-256", f"sha256={digest}"), ("Content-Type", "application/json")]


def stripe_headers(body: bytes, secret: str = STRIPE_SECRET, timestamp: int | None = None) -> list[tuple[str, str]]:
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return [("Stripe-Signature", f"t={t},v1={digest}"), ("Content-Type", "application/json")]


def clockify_headers(
    event: str = "TIME_ENTRY_UPDATED", token: str = CLOCKIFY_TOKEN, delivery: str | None = None
) -> list[tuple[str, str]]:
    headers = [("Clockify-Signature", token), ("Clockify-Webhook-Event-Type", event),
               ("Content-Type", "application/json")]  # fmt: skip
    if delivery is not None:
        headers.append(("Clockify-Webhook-Delivery-Id", delivery))
    return headers


def toggl_event(event_id: int = 101, action: str = "updated") -> bytes:
    return json.dumps({
        "event_id": event_id, "created_at": "2026-11-20T10:00:00Z", "creator_id": 9,
        "metadata": {"action": action, "event_user_id": 9, "model": "time_entry", "workspace_id": 1},
        "payload": {"id": 555, "workspace_id": 1, "duration": 3600, "start": "2026-11-20T08:00:00+00:00"},
        "subscription_id": 7, "timestamp": "2026-11-20T10:00:00Z",
    }).encode()  # fmt: skip


def stripe_event(event_id: str = "evt_receiver_1") -> bytes:
    return json.dumps({"id": event_id, "object": "event", "type": "invoice.paid", "created": int(time.time()),
                       "data": {"object": {"id": "in_1", "object": "invoice"}}}).encode()  # fmt: skip


def clockify_entry(entry_id: str = "5f0c3a0e1c2d3e4f5a6b7c8d", description: str = "design review") -> bytes:
    return json.dumps({"id": entry_id, "userId": "u1", "projectId": "p1", "description": description,
                       "timeInterval": {"start": "2026-11-20T08:00:00Z", "end": "2026-11-20T09:30:00Z",
                                        "duration": "PT1H30M"}}).encode()  # fmt: skip


def vendor_connections(*, toggl: bool = True, clockify: bool = True, stripe: bool = True) -> dict[str, str]:
    """``AIRFLOW_CONN_*`` values with the webhook secrets these helpers sign with."""
    env: dict[str, str] = {}
    if toggl:
        env["AIRFLOW_CONN_TOGGL_DEFAULT"] = json.dumps({"conn_type": "http", "host": "http://toggl.invalid",
                                                        "extra": {"webhook_secret": TOGGL_SECRET}})  # fmt: skip
    if clockify:
        env["AIRFLOW_CONN_CLOCKIFY_DEFAULT"] = json.dumps({"conn_type": "http", "host": "http://clockify.invalid",
                                                           "extra": {"webhook_token": CLOCKIFY_TOKEN}})  # fmt: skip
    if stripe:
        env["AIRFLOW_CONN_STRIPE_DEFAULT"] = json.dumps({"conn_type": "http", "host": "http://stripe.invalid",
                                                         "extra": {"webhook_secret": STRIPE_SECRET}})  # fmt: skip
    return env
