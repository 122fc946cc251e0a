"""What every vendor sandbox needs to be a real HTTP server, written once.

A threaded HTTP/1.1 server with keep-alive that remembers its connections (so ``stop()`` also closes idle
keep-alive sockets), a handler that writes headers and body in one write (two small writes meet Nagle and
delayed ACK and stall ~40 ms each on loopback), and the CLI's serve-until-signal loop. A sandbox supplies
only its name, its request entry point and the body of a 500 in its vendor's shape.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import socketserver
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any

# (status, body bytes, extra headers); ``None`` instead of a response means "drop the connection".
Response = tuple[int, bytes, list[tuple[str, str]]]
Serve = Callable[[str, str, Any, bytes, str], "Response | None"]  # method, target, headers, body, host


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    serve: Serve
    internal_error: Callable[[Exception], Response]
    clock: Callable[[], float] | None = None

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn) that can stall; we don't need it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def track(self, connection: socket.socket, alive: bool) -> None:
        with self._connections_lock:
            if alive:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    sys_version = ""
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The ``Date`` header on the sandbox's clock, as the vendor's servers stamp it on theirs (a sandbox run
        ahead says so, and a client that reads the vendor's time from ``Date`` sees the same time as ``created``)."""
        if timestamp is None and self.server.clock is not None:
            timestamp = self.server.clock()
        return super().date_time_string(timestamp)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging; each sandbox's stats() has the counters."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        host = self.headers.get("Host") or "{}:{}".format(*self.server.server_address[:2])
        try:
            response = self.server.serve(method, self.path, self.headers, body, host)
        except Exception as exc:  # a sandbox bug should surface as a 500, not a hung client
            response = self.server.internal_error(exc)
        if response is None:
            self.close_connection = True
            return
        status, payload, extra = response
        self.send_response(status)
        if not any(name.lower() == "content-type" for name, _ in extra):
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in extra:
            self.send_header(name, value)
        self._headers_buffer.append(b"\r\n")
        self._headers_buffer.append(payload)
        self.flush_headers()


class BackgroundServer:
    """One sandbox served on a daemon thread."""

    def __init__(self, name: str, serve: Serve, internal_error: Callable[[Exception], Response],
                 clock: Callable[[], float] | None = None) -> None:  # fmt: skip
        self.name = name
        self._clock = clock
        self._serve = serve
        self._internal_error = internal_error
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self.base_url: str | None = None

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def start(self, host: str, port: int) -> str:
        if self._httpd is not None:
            raise RuntimeError("sandbox already started")
        handler = type(f"{self.name}Handler", (_Handler,), {"server_version": f"{self.name}/1.0"})
        httpd = _Server((host, port), handler)
        httpd.serve, httpd.internal_error, httpd.clock = self._serve, self._internal_error, self._clock
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=self.name, daemon=True)  # fmt: skip
        self._thread.start()
        self.base_url = f"http://{host}:{httpd.server_address[1]}"
        return self.base_url

    def stop(self) -> None:
        """Stop serving and close every open keep-alive connection."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thread = None


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT: install it before slow set-up, so an early signal still counts."""
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stopping


def serve_until(stopping: threading.Event, stop: Callable[[], None]) -> int:
    """Block until ``stopping`` is set, then stop the sandbox; exit code 0 (a requested shutdown)."""
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        stop()
    return 0


@dataclass
class Fault:
    kind: str
    times: int
    path_prefix: str
    after: int
    delay: float


class FaultPlan:
    """Injected misbehaviour: each fault fires on the next matching requests, after letting ``after`` pass."""

    def __init__(self, kinds: tuple[str, ...]) -> None:
        self.kinds = kinds
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, kind: str, *, times: int, path_prefix: str, after: int, delay: float) -> None:
        if kind not in self.kinds:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {self.kinds}")
        if int(times) < 1 or int(after) < 0 or float(delay) < 0:
            raise ValueError("times must be >= 1, after >= 0, delay >= 0")
        with self._lock:
            self._faults.append(Fault(kind, int(times), str(path_prefix), int(after), float(delay)))

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, path: str) -> Fault | None:
        """The fault this request triggers, if any (one per request; the others keep their turn)."""
        with self._lock:
            fired: Fault | None = None
            for fault in self._faults:
                if not path.startswith(fault.path_prefix):
                    continue
                if fault.after > 0:
                    fault.after -= 1
                elif fired is None:
                    fired = fault
                    fault.times -= 1
            self._faults = [f for f in self._faults if f.times > 0]
            return fired


class Traffic:
    """API traffic counters and a bounded request log (status 0 = dropped connection)."""

    def __init__(self, log_size: int, counters: tuple[str, ...] = ()) -> None:
        self._log_size = log_size
        self._counter_names = counters
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._requests = 0
            self._by_path: dict[str, int] = {}
            self._status_counts: dict[int, int] = {}
            self._counters = dict.fromkeys(self._counter_names, 0)
            self._log: deque[tuple[str, str, int]] = deque(maxlen=self._log_size)

    def record(self, method: str, target: str, status: int, *, counter: str | None = None) -> None:
        path = target.split("?", 1)[0]
        with self._lock:
            self._requests += 1
            self._by_path[path] = self._by_path.get(path, 0) + 1
            self._status_counts[status] = self._status_counts.get(status, 0) + 1
            if counter is not None:
                self._counters[counter] += 1
            self._log.append((method, target, status))

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"requests": self._requests, "by_path": dict(self._by_path),
                    "status_counts": dict(self._status_counts), **self._counters, "log": list(self._log)}  # fmt: skip
