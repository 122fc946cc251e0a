"""Harvest expenses through closeout_sync_harvest: real Airflow (dag.test), real Postgres, the Harvest sandbox.

The warehouse's current expenses (closeout.expenses) must equal what Harvest lists now, field by field and
in exact minor units; every change a run saw is one new version in closeout.expense_versions carrying that
run; deletions are found by the sweep and kept as 'deleted' versions; bad expenses are quarantined with
their reason while the good ones land; a task killed mid-listing resumes at its last committed page.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

import psycopg
import pytest
from conftest import set_harvest_extra

from sandbox.harvest import generate_dataset

pytestmark = pytest.mark.integration

DAG_ID = "closeout_sync_harvest"
EXPONENT = {"JPY": 0, "KWD": 3}


def minor(expense: dict) -> int:
    scale = Decimal(10) ** EXPONENT.get(expense["client"]["currency"], 2)
    return int((Decimal(str(expense["total_cost"])) * scale).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def current(warehouse) -> dict[str, dict]:
    rows = warehouse.rows(
        """SELECT source_id, client_key, project_key, user_key, spent_date, category, billable, approved,
                  currency, amount_minor, receipt_url, deleted_at, version, units, unit_price, total_cost,
                  billed_in_source, source_invoice_ref, is_locked, notes
           FROM closeout.expenses WHERE source = 'harvest'"""
    )
    keys = ("client_key", "project_key", "user_key", "spent_date", "category", "billable", "approved", "currency",
            "amount_minor", "receipt_url", "deleted_at", "version", "units", "unit_price", "total_cost",
            "billed", "invoice_ref", "is_locked", "notes")  # fmt: skip
    return {r[0]: dict(zip(keys, r[1:], strict=True)) for r in rows}


def assert_mirrors(warehouse, harvest, *, deleted=frozenset(), bad=frozenset()) -> dict[str, dict]:
    got = current(warehouse)
    live = {
        str(e["id"]): e
        for e in harvest.expenses.snapshot()
        if isinstance(e, dict) and isinstance(e.get("id"), int) and str(e["id"]) not in bad
    }
    assert {k for k, v in got.items() if v["deleted_at"] is None} == set(live)
    assert {k for k, v in got.items() if v["deleted_at"] is not None} == set(deleted)
    for source_id, expense in live.items():
        row = got[source_id]
        assert row["client_key"] == f"harvest:{expense['client']['id']}", source_id
        assert row["project_key"] == f"harvest:{expense['project']['id']}", source_id
        assert row["user_key"] == f"harvest:{expense['user']['id']}", source_id
        assert row["spent_date"] == date.fromisoformat(expense["spent_date"]), source_id
        assert row["category"] == expense["expense_category"]["name"], source_id
        assert row["billable"] is expense["billable"] and row["approved"] is expense["is_closed"], source_id
        assert row["billed"] is expense["is_billed"] and row["is_locked"] is expense["is_locked"], source_id
        assert row["currency"] == expense["client"]["currency"], source_id
        assert row["total_cost"] == Decimal(str(expense["total_cost"])), source_id
        assert row["amount_minor"] == minor(expense), (source_id, expense)
        assert isinstance(row["amount_minor"], int)
        assert row["receipt_url"] == (expense["receipt"] or {}).get("url"), source_id
        assert row["notes"] == expense["notes"]
        unit_price = expense["expense_category"]["unit_price"]
        assert row["unit_price"] == (None if unit_price is None else Decimal(str(unit_price))), source_id
    return got


def versions_of(warehouse, source_id: str) -> list[tuple]:
    return warehouse.rows(
        """SELECT version, change, amount_minor, deleted_at IS NOT NULL, sync_run_id, approved
           FROM closeout.expense_versions WHERE source = 'harvest' AND source_id = %s ORDER BY version""",
        (source_id,),
    )


def last_run(warehouse) -> dict:
    row = warehouse.rows(
        """SELECT status, mode, records, versions_created, deletions, quarantined, cursor, sync_run_id
           FROM closeout.sync_runs ORDER BY sync_run_id DESC LIMIT 1"""
    )[0]
    keys = ("status", "mode", "records", "versions", "deletions", "quarantined", "cursor", "id")
    return dict(zip(keys, row, strict=True))


def expense_requests(harvest) -> list[tuple[str, int]]:
    return [(t, s) for _m, t, s in harvest.stats()["log"] if t.startswith("/v2/expenses")]


def project_in(harvest, currency: str) -> int:
    return next(pid for pid, p in harvest._projects.items() if p["client"]["currency"] == currency)


@pytest.fixture
def books(harvest):
    """A small Harvest account with a spread of expenses: receipts, mileage, JPY and KWD clients."""
    harvest.load(generate_dataset(40, seed=5, anchor=date.today(), n_clients=8))
    today = date.today()
    book = harvest.expenses
    book.create_expense(spent_date=today - timedelta(days=2), total_cost=33.35, notes="Lunch with client",
                        receipt={"url": "https://sandbox.harvestapp.com/expenses/1/receipt", "file_name": "lunch.gif",
                                 "file_size": 39410, "content_type": "image/gif"})  # fmt: skip
    book.create_expense(spent_date=today - timedelta(days=3), expense_category_id=4195929, units=120.5)  # mileage
    book.create_expense(spent_date=today - timedelta(days=4), total_cost=12000, project_id=project_in(harvest, "JPY"))
    book.create_expense(spent_date=today - timedelta(days=5), total_cost=12.345, project_id=project_in(harvest, "KWD"),
                        billable=False, is_closed=True)  # fmt: skip
    for n in range(6):
        book.create_expense(spent_date=today - timedelta(days=10 + n), total_cost=100 + n, expense_category_id=4195927)
    return harvest


def test_expenses_land_versioned_and_follow_edits_and_deletions(warehouse, books, run_dag):
    result = run_dag(DAG_ID)
    assert result.state == "success", result
    assert result.task_states["expenses"] == "success"
    got = assert_mirrors(warehouse, books)
    assert len(got) == 10
    mileage = next(v for v in got.values() if v["category"] == "Mileage")
    assert mileage["units"] == Decimal("120.5") and mileage["unit_price"] == Decimal("0.655")
    assert mileage["amount_minor"] == 7893  # 120.5 x 0.655 = 78.9275 -> 78.93
    assert {v["currency"] for v in got.values()} >= {"JPY", "KWD"}
    run = last_run(warehouse)
    first_run = run["id"]
    assert run["status"] == "succeeded" and run["cursor"]["expenses_since"]
    assert warehouse.scalar("SELECT count(*) FROM closeout.expense_versions") == 10

    # an edit, an approval, a deletion in the window and a new expense
    snapshot = books.expenses.snapshot()
    edited, approved, gone = snapshot[0]["id"], snapshot[1]["id"], snapshot[2]["id"]
    books.expenses.update_expense(edited, total_cost=44.5, notes="Dinner, not lunch")
    books.expenses.update_expense(approved, is_closed=True)
    books.expenses.delete_expense(gone)
    added = books.expenses.create_expense(spent_date=date.today() - timedelta(days=1), total_cost=7.25)["id"]
    books.reset_stats()
    result = run_dag(DAG_ID, {"sweep": "always"})
    assert result.state == "success", result
    second_run = last_run(warehouse)
    assert second_run["id"] == first_run + 1 and second_run["status"] == "succeeded"
    assert second_run["deletions"] == 1
    # the incremental listing asked only for what changed since the cursor
    listings = [t for t, s in expense_requests(books) if s == 200]
    assert any("updated_since=" in t for t in listings)
    assert_mirrors(warehouse, books, deleted={str(gone)})
    assert [v[1] for v in versions_of(warehouse, str(edited))] == ["created", "updated"]
    assert versions_of(warehouse, str(edited))[-1][4] == second_run["id"]
    assert [(v[1], v[5]) for v in versions_of(warehouse, str(approved))] == [("created", False), ("updated", True)]
    deleted = versions_of(warehouse, str(gone))
    assert [v[1] for v in deleted] == ["created", "deleted"] and deleted[-1][2] == 0 and deleted[-1][3] is True
    assert [v[1] for v in versions_of(warehouse, str(added))] == ["created"]
    assert warehouse.scalar("SELECT count(*) FROM closeout_data.expense_sweep_seen") == 0  # cleaned up

    # nothing changed: a third run writes no expense version; rows are never removed
    before = warehouse.scalar("SELECT count(*) FROM closeout.expense_versions")
    assert run_dag(DAG_ID, {"sweep": "always"}).state == "success"
    assert warehouse.scalar("SELECT count(*) FROM closeout.expense_versions") == before
    assert warehouse.scalar("SELECT count(*) FROM closeout.expenses") == 11

    # a deleted expense that comes back is restored as a new version
    restored = next(e for e in snapshot if e["id"] == gone)
    books.expenses.create_expense(id=gone, spent_date=restored["spent_date"], total_cost=restored["total_cost"],
                                  project_id=restored["project"]["id"])  # fmt: skip
    assert run_dag(DAG_ID, {"sweep": "never"}).state == "success"
    assert [v[1] for v in versions_of(warehouse, str(gone))] == ["created", "deleted", "restored"]


def test_sweep_keeps_expenses_moved_out_of_the_window_and_old_ones(warehouse, books, run_dag):
    today = date.today()
    old = books.expenses.create_expense(spent_date=today - timedelta(days=200), total_cost=5)["id"]
    assert run_dag(DAG_ID).state == "success"
    moved = books.expenses.snapshot()[0]["id"]
    books.expenses.update_expense(moved, spent_date=(today - timedelta(days=300)).isoformat())
    books.expenses.delete_expense(old)  # outside the 90-day window: not seen as deleted here
    assert run_dag(DAG_ID, {"sweep": "always"}).state == "success"
    got = current(warehouse)
    assert got[str(moved)]["deleted_at"] is None and got[str(moved)]["spent_date"] == today - timedelta(days=300)
    assert got[str(old)]["deleted_at"] is None
    assert last_run(warehouse)["deletions"] == 0


def test_bad_expenses_are_quarantined_with_their_reason(warehouse, books, run_dag):
    day = (date.today() - timedelta(days=3)).isoformat()
    template = books.expenses.snapshot()[0]
    bad = {
        "currency": {**template, "id": 800000001, "spent_date": day,
                     "client": {**template["client"], "currency": "XYZ"}},
        "nul": {**template, "id": 800000002, "spent_date": day, "notes": "taxi\x00home"},
        "absurd": {**template, "id": 800000003, "spent_date": day, "total_cost": 5e12},
        "negative": {**template, "id": 800000004, "spent_date": day, "total_cost": -3.5},
        "no_project": {k: v for k, v in template.items() if k != "project"} | {"id": 800000005, "spent_date": day},
    }
    keys = {name: books.expenses.put_raw_expense(raw) for name, raw in bad.items()}
    books.expenses.put_raw_expense(["not", "an", "object"])
    result = run_dag(DAG_ID)
    assert result.state == "success", result
    assert_mirrors(warehouse, books, bad={str(raw["id"]) for raw in bad.values()})
    rows = warehouse.rows(
        "SELECT source_id, field, reason, raw FROM closeout.quarantine WHERE entity = 'expense' ORDER BY quarantine_id"
    )
    reasons = {(r[0], r[1]): r[2] for r in rows}
    assert "unknown currency 'XYZ'" in reasons[("800000001", "client.currency")]
    assert "NUL" in reasons[("800000002", "notes")]
    assert "implausible amount" in reasons[("800000003", "total_cost")]
    assert "negative amount" in reasons[("800000004", "total_cost")]
    assert reasons[("800000005", "project.id")] == "missing"
    assert reasons[(None, "(record)")].startswith("not an object")
    assert all(r[3] for r in rows) and len(rows) == 6
    run = last_run(warehouse)
    assert run["status"] == "succeeded" and run["quarantined"] == 6

    # the bad currency fixed in Harvest: stored, and its quarantine row resolved; seen again: no new row
    books.expenses.delete_expense(keys["currency"])
    books.expenses.create_expense(id=800000001, spent_date=day, total_cost=9.99, project_id=template["project"]["id"])
    assert run_dag(DAG_ID, {"full_refresh": True}).state == "success"
    assert current(warehouse)["800000001"]["amount_minor"] == 999
    assert warehouse.scalar("SELECT count(*) FROM closeout.quarantine WHERE entity = 'expense'") == 6
    assert warehouse.scalar(
        "SELECT resolved_at IS NOT NULL FROM closeout.quarantine WHERE entity = 'expense' AND source_id = '800000001'"
    )


def test_a_failed_expense_task_resumes_from_its_last_committed_page(warehouse, books, run_dag, monkeypatch):
    set_harvest_extra(monkeypatch, per_page=3, retry={"backoff_base": 0.01, "backoff_cap": 0.05, "max_attempts": 2})
    books.inject_fault("drop", times=2, after=2, path_prefix="/v2/expenses")
    result = run_dag(DAG_ID)
    assert result.state == "success", result
    assert result.tries["expenses"] == 2
    assert_mirrors(warehouse, books)
    ok_pages = [t for t, s in expense_requests(books) if s == 200]
    assert len(ok_pages) == len(set(ok_pages)) == 4  # 10 expenses / 3 per page; pages 1-2 not read again
    assert warehouse.scalar("SELECT count(*) FROM closeout.sync_runs") == 1
    assert warehouse.scalar("SELECT count(*) FROM closeout.expense_versions") == 10


def test_expense_listing_is_paced_under_the_rate_limit(warehouse, books, run_dag, monkeypatch):
    books.set_rate_limit((4, 1.0))
    set_harvest_extra(monkeypatch, max_requests=4, per_seconds=1.0, per_page=3)
    result = run_dag(DAG_ID, {"sweep": "never"})
    assert result.state == "success", result
    assert_mirrors(warehouse, books)
    counts = books.stats()["status_counts"]
    assert not counts.get(429) and not counts.get("429"), counts


def test_expense_history_cannot_be_rewritten(warehouse, books, run_dag):
    assert run_dag(DAG_ID).state == "success"
    from closeout.warehouse.db import connect

    with connect() as conn, pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        conn.execute("UPDATE closeout_data.expense_versions SET amount_minor = 1")
    columns = {r[0] for r in warehouse.rows(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'closeout' AND table_name = 'expenses'"
    )}  # fmt: skip
    assert columns >= {"source", "source_id", "client_key", "project_key", "user_key", "spent_date", "category",
                       "billable", "approved", "currency", "amount_minor", "receipt_url", "deleted_at", "version"}
