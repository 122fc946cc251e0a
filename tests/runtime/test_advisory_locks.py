"""Advisory-lock waits are bounded and fail with a retryable message naming the lock and its holder."""

from __future__ import annotations

import time

import pytest
from runtime_support import task_context


def test_a_second_sync_fails_within_the_bound_naming_the_holder_task(warehouse, monkeypatch) -> None:
    from closeout.trackers import runs
    from closeout.warehouse.db import connect

    monkeypatch.setattr(runs, "LOCK_WAIT", "500ms")
    task_context(monkeypatch, "closeout_sync_harvest", "window", "manual__holder")
    with connect(autocommit=True) as holder:
        runs.acquire_source_lock(holder, "harvest")
        task_context(monkeypatch, "closeout_month_end_close", "final_sync", "manual__waiter")
        with connect(autocommit=True) as waiter:
            started = time.monotonic()
            with pytest.raises(runs.SyncBusy) as caught:
                runs.acquire_source_lock(waiter, "harvest")
            waited = time.monotonic() - started
    assert 0.4 < waited < 3
    message = str(caught.value)
    assert "'closeout.sync.harvest'" in message
    assert "closeout:sync_harvest/window/manual__holder" in message
    assert "retries" in message


def test_the_payout_release_lock_names_its_holder(warehouse, monkeypatch) -> None:
    from closeout import locks
    from closeout.warehouse.db import connect

    monkeypatch.setenv("CLOSEOUT_LOCK_WAIT_SECONDS", "0.6")
    task_context(monkeypatch, "closeout_payouts", "release", "manual__first")
    with connect(autocommit=True) as holder:
        key = locks.lock_key(holder, "closeout_payouts_release")
        locks.acquire(holder, key, name="closeout_payouts_release")
        task_context(monkeypatch, "closeout_payouts", "release", "manual__second")
        with connect() as waiter:
            started = time.monotonic()
            with pytest.raises(locks.LockBusy) as caught:
                locks.acquire(waiter, key, name="closeout_payouts_release")
            assert time.monotonic() - started < 3
            assert caught.value.holders[0]["application_name"] == "closeout:payouts/release/manual__first"
            assert "still held after 0.6 s" in str(caught.value)
        locks.release(holder, key)
        with connect() as waiter:  # free again: taken at once
            started = time.monotonic()
            locks.acquire(waiter, key, name="closeout_payouts_release", transaction=True)
            assert time.monotonic() - started < 0.5


def test_the_migration_lock_is_bounded_too(warehouse, monkeypatch) -> None:
    from closeout import locks
    from closeout.warehouse import migrations
    from closeout.warehouse.db import connect

    monkeypatch.setattr(migrations, "MIGRATION_LOCK_WAIT_SECONDS", 0.5)
    with connect(autocommit=True, app_name="closeout:migrate-elsewhere") as holder:
        locks.acquire(holder, migrations._LOCK_KEY, name="closeout.migrations")
        with connect() as waiter, pytest.raises(locks.LockBusy, match="closeout:migrate-elsewhere"):
            migrations.apply_migrations(waiter)


def test_a_drafting_waiting_on_the_billing_lock_fails_naming_the_holder(warehouse, monkeypatch) -> None:
    """A 48-bit key: the holder is found through pg_locks' classid/objid halves."""
    from closeout import locks
    from closeout.billing import drafting
    from closeout.warehouse.db import connect

    monkeypatch.setenv("CLOSEOUT_LOCK_WAIT_SECONDS", "0.5")
    task_context(monkeypatch, "closeout_month_end_close", "lock_period", "manual__close")
    with connect() as holder:
        drafting.lock_billing(holder)  # held until holder's transaction ends
        task_context(monkeypatch, "closeout_invoice_drafts", "refresh_drafts", "asset_triggered__1")
        with connect() as waiter, pytest.raises(locks.LockBusy) as caught:
            drafting.lock_billing(waiter)
        assert "'closeout.billing'" in str(caught.value)
        assert "closeout:month_end_close/lock_period/manual__close" in str(caught.value)
        holder.rollback()
        with connect() as waiter:
            drafting.lock_billing(waiter)
