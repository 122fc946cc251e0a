"""No blocking call on the API server's event loop: a warehouse that hangs, is locked or is saturated slows
only the webhook that needs it, never the server; the vendor gets a 503 with Retry-After in bounded time.

"Black hole" is a loopback socket that listens but never answers: TCP connects, libpq's startup packet goes
unanswered, exactly like a warehouse behind a dropped firewall rule. Only the connect timeout ends the wait.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from closeout.warehouse.db import connect
from closeout.webhooks.app import create_app
from closeout.webhooks.settings import ReceiverSettings
from receiver_support import (
    Response,
    Served,
    request,
    serve_in_thread,
    stripe_event,
    stripe_headers,
    vendor_connections,
)


@pytest.fixture
def vendors(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in vendor_connections().items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def black_hole_warehouse(monkeypatch: pytest.MonkeyPatch, vendors) -> Iterator[None]:
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(64)  # never accepted, never answered
    monkeypatch.setenv("AIRFLOW_CONN_CLOSEOUT_WAREHOUSE", json.dumps(
        {"conn_type": "postgres", "host": "127.0.0.1", "port": hole.getsockname()[1], "login": "x",
         "schema": "x"}))  # fmt: skip
    yield
    hole.close()


def post_signed(served: Served, event_id: str) -> Response:
    body = stripe_event(event_id)
    return request(served, "POST", "/stripe", stripe_headers(body), body, timeout=30)


def warm(served: Served) -> None:
    """The first connection lookup imports Airflow's connection code (once per process): out of the timings."""
    body = stripe_event("evt_warm")
    assert request(served, "POST", "/stripe", stripe_headers(body, "whsec_wrong"), body).status == 401


def test_a_hanging_warehouse_costs_the_vendor_a_bounded_503_and_the_server_nothing(black_hole_warehouse):
    app = create_app(settings=ReceiverSettings(connect_timeout_seconds=2, retry_after_seconds=17))
    with serve_in_thread(app) as served, ThreadPoolExecutor(4) as pool:
        warm(served)
        pending = [pool.submit(post_signed, served, f"evt_hole_{i}") for i in range(3)]
        time.sleep(0.3)  # the three are now waiting on the black hole, each in a worker thread
        health = [request(served, "GET", "/health") for _ in range(5)]
        assert all(r.status == 200 and r.seconds < 0.5 for r in health), health
        assert max(r.json()["busy"] for r in health) == 3
        for future in pending:
            response = future.result(timeout=30)
            assert response.status == 503 and response.headers["retry-after"] == "17", response
            assert 1.5 < response.seconds < 6, "the connect timeout, not forever"


def test_a_saturated_pool_answers_503_at_once_instead_of_queueing(black_hole_warehouse):
    app = create_app(settings=ReceiverSettings(db_threads=1, db_queue=1, connect_timeout_seconds=3))
    with serve_in_thread(app) as served, ThreadPoolExecutor(2) as pool:
        warm(served)
        busy = [pool.submit(post_signed, served, f"evt_busy_{i}") for i in range(2)]  # one running, one queued
        time.sleep(0.5)
        refused = post_signed(served, "evt_refused")
        assert refused.status == 503 and int(refused.headers["retry-after"]) > 0
        assert refused.seconds < 0.5, "refused at once, not after waiting for a thread"
        assert request(served, "GET", "/health").json()["busy"] == 2
        assert [f.result(timeout=30).status for f in busy] == [503, 503]
        assert request(served, "GET", "/health").json()["busy"] == 0  # every slot given back


def test_a_locked_inbox_hits_the_statement_timeout_then_the_retry_is_stored(warehouse, vendors):
    app = create_app(settings=ReceiverSettings(statement_timeout_ms=400))
    with serve_in_thread(app) as served:
        warm(served)
        locker = connect()
        try:
            locker.execute("LOCK TABLE closeout_data.webhook_inbox IN ACCESS EXCLUSIVE MODE")
            blocked = post_signed(served, "evt_locked")
            assert blocked.status == 503 and "retry-after" in blocked.headers, blocked
            assert blocked.seconds < 3
        finally:
            locker.rollback()
            locker.close()
        retried = post_signed(served, "evt_locked")
        assert (retried.status, retried.json()) == (200, {"status": "stored"})
    assert warehouse.rows("SELECT event_id FROM closeout_data.webhook_inbox") == [("evt_locked",)]


def test_the_receiver_sessions_carry_its_timeouts_over_the_connections_own(warehouse, monkeypatch):
    """The receiver's bounds win over the connection's extras; other libpq options there are kept."""
    from closeout.webhooks.inbox import WarehouseInbox

    conn = json.loads(os.environ["AIRFLOW_CONN_CLOSEOUT_WAREHOUSE"])
    conn["extra"] = {**conn.get("extra", {}), "connect_timeout": 60, "options": "-c work_mem=8MB"}
    monkeypatch.setenv("AIRFLOW_CONN_CLOSEOUT_WAREHOUSE", json.dumps(conn))
    inbox = WarehouseInbox(connect_timeout_seconds=1, statement_timeout_ms=50)
    with inbox.connect() as session:
        assert session.execute("SHOW statement_timeout").fetchone()[0] == "50ms"
        assert session.execute("SHOW work_mem").fetchone()[0] == "8MB"
        assert session.info.get_parameters()["connect_timeout"] == "1"
        with pytest.raises(psycopg.errors.QueryCanceled):
            session.execute("SELECT pg_sleep(1)")
