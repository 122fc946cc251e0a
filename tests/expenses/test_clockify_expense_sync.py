"""Clockify expenses through closeout_sync_clockify: real Airflow (dag.test), real Postgres, the Clockify sandbox.

Clockify's expense listing has no date filter and no update time: every due run lists all expenses, a
change becomes a new version, an expense the complete listing no longer returns gets a 'deleted' version,
and bad ones are quarantined with their reason.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from conftest import set_conn_extra

from sandbox.clockify import generate_dataset

pytestmark = pytest.mark.integration

DAG_ID = "closeout_sync_clockify"


@pytest.fixture
def ledger(clockify, monkeypatch):
    clockify.load(generate_dataset(30, seed=3, anchor=date.today(), days=20))
    set_conn_extra(monkeypatch, "clockify_default", workspace_id=clockify.workspace_id, page_size=2)
    book = clockify.expenses
    today = date.today()
    book.create_expense(date=today - timedelta(days=1), total=2550, notes="Train", fileName="ticket.pdf")
    book.create_expense(date=today - timedelta(days=2), categoryId="6650c0ffee00000000000003", quantity=12.5)
    book.create_expense(date=today - timedelta(days=3), total=990, billable=False, locked=True)
    return clockify


def current(warehouse) -> dict[str, tuple]:
    rows = warehouse.rows(
        """SELECT source_id, amount_minor, currency, billable, approved, category, units, unit_price, receipt_url,
                  deleted_at IS NOT NULL, version, client_key, project_key, spent_date
           FROM closeout.expenses WHERE source = 'clockify'"""
    )
    return {r[0]: r[1:] for r in rows}


def test_clockify_expenses_land_and_follow_edits_deletions_and_bad_records(warehouse, ledger, run_dag):
    result = run_dag(DAG_ID)
    assert result.state == "success", result
    assert result.task_states["expenses"] == "success"
    got = current(warehouse)
    live = {e["id"]: e for e in ledger.expenses.snapshot()}
    assert set(got) == set(live)
    currency = ledger._workspace["hourlyRate"]["currency"]
    for expense_id, e in live.items():
        amount, cur, billable, approved, category, _units, _price, receipt, deleted, version, client, project, day = (
            got[expense_id]
        )
        assert amount == e["total"] and cur == currency and deleted is False and version == 1
        assert billable is e["billable"] and approved is e["locked"] and category == e["category"]["name"]
        assert project == f"clockify:{e['project']['id']}" and client == f"clockify:{e['project']['clientId']}"
        assert day == date.fromisoformat(e["date"])
        assert (receipt is not None) is bool(e["fileId"])
    mileage = next(v for v in got.values() if v[4] == "Mileage")
    assert mileage[0] == 525 and mileage[5] == Decimal("12.5") and mileage[6] == Decimal("0.42")

    snapshot = ledger.expenses.snapshot()
    edited, gone = snapshot[0]["id"], snapshot[1]["id"]
    ledger.expenses.update_expense(edited, total=3100)
    ledger.expenses.delete_expense(gone)
    ledger.expenses.put_raw_expense({**snapshot[2], "id": "ffffffffffffffffffffff01", "notes": "bad\x00note"})
    ledger.expenses.put_raw_expense({**snapshot[2], "id": "ffffffffffffffffffffff02", "total": 10**15})
    result = run_dag(DAG_ID, {"sweep": "always"})
    assert result.state == "success", result
    got = current(warehouse)
    assert got[edited][0] == 3100 and got[edited][9] == 2
    assert got[gone][8] is True and got[gone][0] == 0
    changes = warehouse.rows(
        "SELECT change FROM closeout.expense_versions WHERE source_id = %s ORDER BY version", (gone,)
    )
    assert [c for (c,) in changes] == ["created", "deleted"]
    reasons = dict(warehouse.rows(
        "SELECT source_id, reason FROM closeout.quarantine WHERE source = 'clockify' AND entity = 'expense'"
    ))  # fmt: skip
    assert "NUL" in reasons["ffffffffffffffffffffff01"]
    assert "implausible amount" in reasons["ffffffffffffffffffffff02"]
    assert "ffffffffffffffffffffff01" not in got

    # nothing changed: no new version
    before = warehouse.scalar("SELECT count(*) FROM closeout.expense_versions")
    assert run_dag(DAG_ID, {"sweep": "always"}).state == "success"
    assert warehouse.scalar("SELECT count(*) FROM closeout.expense_versions") == before


def test_clockify_expense_listing_resumes_after_a_failed_task(warehouse, ledger, run_dag, monkeypatch):
    retry = {"backoff_base": 0.01, "backoff_cap": 0.05, "max_attempts": 2}
    set_conn_extra(monkeypatch, "clockify_default", retry=retry)
    ledger.inject_fault("drop", times=2, after=1, path_prefix=f"/api/v1/workspaces/{ledger.workspace_id}/expenses")
    result = run_dag(DAG_ID)
    assert result.state == "success", result
    assert result.tries["expenses"] == 2
    pages = [t for _m, t, s in ledger.stats()["log"] if "/expenses?" in t and s == 200]
    assert len(pages) == len(set(pages)) == 2  # 3 expenses at 2 a page; page 1 was not read again
    assert len(current(warehouse)) == 3
    assert warehouse.scalar("SELECT count(*) FROM closeout.expense_versions") == 3
