"""Issue 15's Done-when: a 60 MB chunked POST to a webhook path costs the server less than 5 MB and gets a 413.

The receiver runs in a uvicorn subprocess of its own (both of uvicorn's HTTP parsers: httptools, which the
API server picks when installed, and h11), so its resident memory is measured by the OS and nothing the
test allocates is counted.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import psutil
import pytest
from closeout.webhooks.app import create_app
from closeout.webhooks.settings import MAX_BODY_ENV, ReceiverSettings
from receiver_support import (
    Served,
    free_port,
    request,
    serve_in_subprocess,
    serve_in_thread,
    stream_chunked,
    stripe_event,
    stripe_headers,
    toggl_event,
    toggl_headers,
    vendor_connections,
)

MB = 1024 * 1024


class PeakRss:
    """Samples a process's resident set every few milliseconds while active; ``peak`` is the largest seen."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.002)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


@pytest.mark.parametrize("http", ["httptools", "h11"])
@pytest.mark.parametrize("path", ["/stripe", "/toggl", "/clockify"])
def test_a_60_mb_chunked_post_gets_413_and_costs_under_5_mb(http, path):
    with serve_in_subprocess(http=http) as (served, pid):
        # the server's own baseline: code paths warmed by ordinary traffic (a refused small request)
        for _ in range(3):
            assert request(served, "POST", path, body=b"{}").status == 401
        baseline = psutil.Process(pid).memory_info().rss
        with PeakRss(pid) as rss:
            upload = stream_chunked(served, path, 60 * MB, headers=stripe_headers(b"irrelevant"))
        assert upload.response is not None, "the server hung up without answering"
        assert upload.response.status == 413, upload.response
        assert upload.response.headers.get("connection") == "close"
        grown = rss.peak - baseline
        assert grown < 5 * MB, f"server RSS grew {grown / MB:.1f} MB for a refused upload"
        # the server stopped reading at the limit: the client was told long before its 60 MB were out
        assert upload.sent_bytes < 16 * MB, upload.sent_bytes
        assert request(served, "GET", "/health").status == 200  # and it is still serving


@pytest.fixture
def airflow_api_server(airflow_db) -> Iterator[tuple[Served, int]]:
    """``airflow api-server`` itself (one worker, so the serving process is the one started), with closeout's
    plugin from the plugins folder, as a platform team runs it."""
    port = free_port()
    command = [sys.executable, "-m", "airflow", "api-server", "--port", str(port), "--host", "127.0.0.1",
               "--workers", "1"]  # fmt: skip
    process = subprocess.Popen(command, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    served = Served("127.0.0.1", port)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if request(served, "GET", "/closeout/webhooks/health").status == 200:
                    break
            except OSError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "the API server did not come up"
            time.sleep(0.5)
        yield served, process.pid
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def test_the_airflow_api_server_itself_refuses_a_60_mb_chunked_post_for_under_5_mb(airflow_api_server):
    served, pid = airflow_api_server
    path = "/closeout/webhooks/stripe"
    for _ in range(3):
        assert request(served, "POST", path, body=b"{}").status == 401
    server = psutil.Process(pid)

    def resident() -> int:  # the server and any worker processes it may have
        return sum(p.memory_info().rss for p in [server, *server.children(recursive=True)])

    baseline = resident()
    peak = baseline
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, resident())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        upload = stream_chunked(served, path, 60 * MB, headers=stripe_headers(b"irrelevant"))
    finally:
        done.set()
        sampler.join()
    assert upload.response is not None and upload.response.status == 413
    assert peak - baseline < 5 * MB, f"API server RSS grew {(peak - baseline) / MB:.1f} MB"
    assert request(served, "GET", "/closeout/webhooks/health").status == 200


def test_the_limit_comes_from_the_environment():
    with serve_in_subprocess({MAX_BODY_ENV: "2048", **vendor_connections()}) as (served, _pid):
        assert stream_chunked(served, "/toggl", 4096, chunk_bytes=1024).response.status == 413
        # within the limit the body reaches the signature check (no secret: 404 would say "not configured")
        small = toggl_event()
        assert len(small) < 2048
        assert request(served, "POST", "/toggl", toggl_headers(small, "wrong"), small).status == 401


def test_a_declared_length_over_the_limit_is_refused_before_a_byte_is_read():
    """Headers only, no body at all: the 413 comes back anyway, so nothing was waited for or read."""
    app = create_app(settings=ReceiverSettings(max_body_bytes=1000), secrets=_never, store=_never)
    with serve_in_thread(app) as served:
        response = request(served, "POST", "/stripe", [("Content-Length", str(60 * MB))], timeout=5)
        assert response.status == 413 and response.headers["connection"] == "close"
        assert response.seconds < 2
        # a body of exactly the limit is read (and refused only for its missing signature)
        assert request(served, "POST", "/stripe", body=b" " * 1000).status == 401
        assert stream_chunked(served, "/stripe", 1001, chunk_bytes=1001).response.status == 413


@pytest.mark.parametrize("value", ["-1", "12abc", "١٢", " ", "99999999999999999999999"])
def test_a_malformed_content_length_is_a_400_never_a_500(value):
    app = create_app(settings=ReceiverSettings(max_body_bytes=1000), secrets=_never, store=_never)
    with serve_in_thread(app) as served:
        response = request(served, "POST", "/stripe", [("Content-Length", value.encode())], timeout=5)
        assert 400 <= response.status < 500


def test_a_body_that_trickles_in_is_cut_off_with_408():
    app = create_app(settings=ReceiverSettings(body_timeout_seconds=0.5), secrets=_never, store=_never)
    with serve_in_thread(app) as served:
        import socket

        with socket.create_connection((served.host, served.port), timeout=5) as sock:
            sock.sendall(b"POST /stripe HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            started = time.monotonic()
            answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert time.monotonic() - started < 3


def test_signed_events_within_the_limit_are_still_stored_once(warehouse, monkeypatch):
    for name, value in vendor_connections().items():
        monkeypatch.setenv(name, value)
    with serve_in_thread(create_app()) as served:
        body = stripe_event("evt_limit_ok")
        for expected in ("stored", "duplicate"):
            response = request(served, "POST", "/stripe", stripe_headers(body), body)
            assert (response.status, response.json()) == (200, {"status": expected})
        chunked = toggl_event(4242)  # a chunked body within the limit is read whole and verified
        upload = stream_chunked(served, "/toggl", 0, toggl_headers(chunked), chunk_bytes=50, body=chunked)
        assert (upload.response.status, upload.response.json()) == (200, {"status": "stored"})
    assert warehouse.rows(
        "SELECT vendor, event_id, redeliveries FROM closeout_data.webhook_inbox ORDER BY inbox_id"
    ) == [("stripe", "evt_limit_ok", 1), ("toggl", "4242", 0)]  # the redelivery is counted, not stored


def _never(*_args):
    raise AssertionError("a refused request must not reach secrets or storage")
