"""QuickBooksHook's OAuth against the QuickBooks sandbox and the real warehouse: rotation persisted, one refresh
for many concurrent tasks (threads and processes), a worker SIGKILLed between the token endpoint's answer and the
commit, reconnecting, and no secret in any log line or any table but the token store."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import requests
from accounting_api_support import UNLIMITED, connect_quickbooks, set_quickbooks_extra, stored_tokens, tables_holding
from closeout.accounting.api.oauth import ReconnectRequired
from closeout.accounting.api.quickbooks import QuickBooksHook
from closeout.warehouse.db import connect

from sandbox.quickbooks import QuickBooksSandbox

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def quickbooks(warehouse, monkeypatch: pytest.MonkeyPatch) -> Iterator[QuickBooksSandbox]:
    sandbox = QuickBooksSandbox(**UNLIMITED)
    sandbox.start()
    connect_quickbooks(monkeypatch, sandbox)
    yield sandbox
    sandbox.stop()


def refused(sandbox: QuickBooksSandbox, refresh_token: str) -> bool:
    answer = requests.post(sandbox.token_url, auth=(sandbox.client_id, sandbox.client_secret), timeout=10,
                           data={"grant_type": "refresh_token", "refresh_token": refresh_token})  # fmt: skip
    return answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


def test_each_rotated_refresh_token_is_persisted_before_the_access_token_is_used(warehouse, quickbooks) -> None:
    seed = quickbooks.first_refresh_token
    assert QuickBooksHook().query_customers() == []
    first = stored_tokens(warehouse)
    assert first["refreshes"] == 1 and first["refresh_token"] not in (seed, None)

    # a new task (new hook) reuses the stored access token: no refresh
    assert QuickBooksHook().query_customers() == []
    assert quickbooks.stats()["token_refreshes"] == 1

    # an hour later on QuickBooks' clock the access token is refused (401): one refresh, rotated and stored
    quickbooks.advance_clock(3601)
    hook = QuickBooksHook()
    assert hook.query_customers() == []
    second = stored_tokens(warehouse)
    assert second["refreshes"] == 2 and second["refresh_token"] != first["refresh_token"]
    assert quickbooks.stats()["token_refreshes"] == 2 and hook.tokens.refreshes == 1
    # the chain moved on: both earlier refresh tokens are dead at QuickBooks, the stored one is the live one
    assert refused(quickbooks, seed) and refused(quickbooks, first["refresh_token"])
    assert QuickBooksHook().query_customers() == []  # still works: nothing above touched the live token


def test_concurrent_tasks_refresh_once_and_share_the_stored_token(warehouse, quickbooks) -> None:
    QuickBooksHook().query_customers()  # seeded and refreshed once
    quickbooks.advance_clock(3601)  # every task's next call gets a 401
    hooks = [QuickBooksHook() for _ in range(8)]
    start = threading.Barrier(len(hooks))
    errors: list[BaseException] = []

    def task(hook: QuickBooksHook) -> None:
        try:
            start.wait()
            hook.query_customers()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=task, args=(hook,)) for hook in hooks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert quickbooks.stats()["token_refreshes"] == 2  # the seed's refresh and exactly one for all eight
    assert sum(hook.tokens.refreshes for hook in hooks) == 1
    assert stored_tokens(warehouse)["refreshes"] == 2


_TASK = """
import sys
from closeout.accounting.api.quickbooks import QuickBooksHook
hook = QuickBooksHook()
sys.stdout.write("ready\\n"); sys.stdout.flush()
sys.stdin.readline()
hook.query_customers()
print("refreshes", hook.tokens.refreshes, flush=True)
"""


def _task_process() -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT)])}
    process = subprocess.Popen([sys.executable, "-c", _TASK], cwd=ROOT, env=env, text=True,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    return process


def test_two_worker_processes_refreshing_at_once_refresh_once(warehouse, quickbooks) -> None:
    QuickBooksHook().query_customers()
    quickbooks.advance_clock(3601)
    with connect() as conn:  # the stored access token is expired for closeout too: both go for the refresh
        conn.execute("UPDATE closeout_data.accounting_oauth SET access_expires_at = now() - interval '1 hour'")
    workers = [_task_process(), _task_process()]
    for worker in workers:
        worker.stdin.write("go\n")
        worker.stdin.flush()
    outputs = [worker.communicate(timeout=120)[0] for worker in workers]
    assert all(worker.returncode == 0 for worker in workers), outputs
    assert sorted(o.strip() for o in outputs) == ["refreshes 0", "refreshes 1"]
    assert quickbooks.stats()["token_refreshes"] == 2
    assert stored_tokens(warehouse)["refreshes"] == 2


def _kill_between_answer_and_commit(warehouse, sandbox: QuickBooksSandbox) -> str:
    """Run a worker until the token endpoint has answered it, hold its commit back, SIGKILL it; return the refresh
    token QuickBooks issued to it (lost with it). The worker's UPDATE of the token row waits behind a SHARE lock
    this test holds (its SELECT ... FOR UPDATE does not), so it is killed exactly in that window."""
    QuickBooksHook().query_customers()
    with connect() as conn:
        conn.execute("UPDATE closeout_data.accounting_oauth SET access_expires_at = now() - interval '1 hour'")
    before = stored_tokens(warehouse)["refresh_token"]
    refreshes = sandbox.stats()["token_refreshes"]
    worker = _task_process()
    blocker = connect()
    try:
        blocker.execute("LOCK TABLE closeout_data.accounting_oauth IN SHARE MODE")
        worker.stdin.write("go\n")
        worker.stdin.flush()
        deadline = time.monotonic() + 60
        while sandbox.stats()["token_refreshes"] == refreshes or not _waiting_on_lock(blocker):
            assert time.monotonic() < deadline, "the worker never reached the token store's commit"
            assert worker.poll() is None, worker.communicate()
            time.sleep(0.05)
        worker.send_signal(signal.SIGKILL)
        worker.wait(30)
    finally:
        blocker.rollback()
        blocker.close()
    assert worker.returncode == -signal.SIGKILL
    lost = sandbox.issued_tokens()
    lost_refresh = next(t for t in reversed(lost) if t.startswith("RT1-"))
    deadline = time.monotonic() + 30
    while warehouse.scalar("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                           "WHERE c.relname = 'accounting_oauth' AND l.pid <> pg_backend_pid()"):  # fmt: skip
        assert time.monotonic() < deadline, "the killed worker's transaction never ended"
        time.sleep(0.05)
    assert stored_tokens(warehouse)["refresh_token"] == before  # nothing of the lost answer was committed
    assert lost_refresh != before
    return lost_refresh


def _waiting_on_lock(conn: psycopg.Connection) -> bool:
    (waiting,) = conn.execute("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                              "WHERE c.relname = 'accounting_oauth' AND NOT l.granted").fetchone()  # fmt: skip
    return waiting > 0


def test_a_worker_killed_after_the_token_answer_leaves_a_token_the_grace_still_accepts(
    warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = QuickBooksSandbox(refresh_grace_seconds=1800, **UNLIMITED)  # as Xero documents; see the docs page
    sandbox.start()
    try:
        connect_quickbooks(monkeypatch, sandbox)
        lost = _kill_between_answer_and_commit(warehouse, sandbox)
        hook = QuickBooksHook()
        assert hook.query_customers() == []  # the next run works from the stored (previous) token
        assert hook.tokens.refreshes == 1
        assert stored_tokens(warehouse)["refresh_token"] not in (lost, None)
        assert refused(sandbox, lost)  # the chain continued from the stored token; the lost one is void
    finally:
        sandbox.stop()


def test_without_a_grace_the_killed_worker_strands_the_chain_until_a_reconnect_restarts_it(
    warehouse, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sandbox = QuickBooksSandbox(refresh_grace_seconds=0, **UNLIMITED)  # Intuit documents no grace
    sandbox.start()
    try:
        connect_quickbooks(monkeypatch, sandbox)
        _kill_between_answer_and_commit(warehouse, sandbox)
        with pytest.raises(ReconnectRequired, match="Reconnect the company") as stranded:
            QuickBooksHook().query_customers()
        assert not stranded.value.retryable
        assert "invalid_grant" in stored_tokens(warehouse)["last_error"]
        # a person reconnects the company and puts the new first token into the connection
        set_quickbooks_extra(monkeypatch, refresh_token=sandbox.connect_company())
        hook = QuickBooksHook()
        assert hook.query_customers() == [] and hook.tokens.refreshes == 1
        assert stored_tokens(warehouse)["last_error"] is None
        secrets = [*sandbox.issued_tokens(), sandbox.client_secret]
        assert not [s for s in secrets if s in caplog.text]
        assert "invalid_grant" in caplog.text  # the failure itself is logged, masked
        assert tables_holding(warehouse, secrets) == []
    finally:
        sandbox.stop()


def test_no_secret_reaches_a_log_line_or_any_table_but_the_token_store(
    warehouse, quickbooks, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    hook = QuickBooksHook()
    hook.create_customer({"DisplayName": "Delta"}, "client:delta")
    quickbooks.advance_clock(3601)
    hook.tokens.forget()
    hook.query_customers()  # 401, refresh, retry
    quickbooks.faults.add("500", times=1, path_prefix="/oauth2", after=0, delay=0)
    quickbooks.advance_clock(3601)
    with connect() as conn:
        conn.execute("UPDATE closeout_data.accounting_oauth SET access_expires_at = now() - interval '1 hour'")
    hook.tokens.forget()
    with pytest.raises(Exception, match="token endpoint answered 500"):
        hook.query_customers()
    hook.query_customers()  # the failed refresh changed nothing: the next one works
    secrets = [*quickbooks.issued_tokens(), quickbooks.client_secret]
    assert len(secrets) >= 6
    assert [s[:8] for s in secrets if s in caplog.text] == []
    assert "refreshed quickbooks tokens of connection quickbooks_default" in caplog.text
    assert tables_holding(warehouse, secrets) == []
    assert stored_tokens(warehouse)["refreshes"] == 3


def test_finance_reads_the_outbox_but_not_the_token_store(warehouse) -> None:
    assert warehouse.rows(
        "SELECT has_table_privilege('closeout_finance', 'closeout_data.accounting_oauth', 'SELECT'), "
        "has_table_privilege('closeout_pipeline', 'closeout_data.accounting_oauth', 'UPDATE'), "
        "has_table_privilege('closeout_finance', 'closeout_data.accounting_api_outbox', 'SELECT')"
    ) == [(False, True, True)]
