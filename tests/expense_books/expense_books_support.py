"""Expenses written through closeout's own capture path (the Harvest normaliser and the expense merge of
``closeout.trackers.expenses``), the expense books configuration as a file, and the ledger views the expense
books tests read. Shared by tests/expense_books."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from closeout.trackers.expenses import harvest as harvest_expenses
from closeout.trackers.expenses import store
from closeout.warehouse.db import connect

_STAMP = datetime(2026, 11, 1, tzinfo=UTC)


@dataclass
class Expense:
    """One Harvest expense as ``GET /v2/expenses`` lists it (the fields closeout reads)."""

    expense_id: int
    total_cost: str
    user: int | str = 11
    client: int = 7
    currency: str = "USD"
    category: str = "Travel"
    billable: bool = True
    approved: bool = True
    spent_date: date = date(2026, 10, 5)
    notes: str | None = None

    def raw(self, edit: int) -> dict[str, Any]:
        return {
            "id": self.expense_id, "spent_date": self.spent_date.isoformat(), "total_cost": self.total_cost,
            "units": None, "billable": self.billable, "is_closed": self.approved, "is_locked": False,
            "locked_reason": None, "is_billed": False, "invoice": None, "receipt": None, "notes": self.notes,
            "expense_category": {"id": 90, "name": self.category, "unit_price": None, "unit_name": None},
            "user": {"id": self.user, "name": f"User {self.user}"},
            "project": {"id": 300 + self.client, "name": "Project"},
            "client": {"id": self.client, "name": f"Client {self.client}", "currency": self.currency},
            "created_at": _STAMP.isoformat(), "updated_at": (_STAMP + timedelta(minutes=edit)).isoformat(),
        }  # fmt: skip


class Tracker:
    """Each ``sync`` is one sync run that lists the given expenses (new versions for what changed)."""

    def __init__(self) -> None:
        self.edits = 0

    def sync(self, *expenses: Expense) -> int:
        self.edits += 1
        with connect() as conn:
            store.prepare_session(conn)
            run = _sync_run(conn)
            currencies = dict(conn.execute("SELECT code, exponent FROM closeout_data.currencies").fetchall())
            page = store.apply_expenses(
                conn, source="harvest", sync_run_id=run, items=[e.raw(self.edits) for e in expenses],
                currencies=currencies, normalize=harvest_expenses.normalize_page, url="test://expenses",
                track_seen=False,
            )  # fmt: skip
            conn.commit()
        assert page.quarantined == 0
        return page.versions

    def delete(self, expense: Expense) -> None:
        """Harvest no longer lists it: the sweep over its day records a 'deleted' version."""
        with connect() as conn:
            run = _sync_run(conn)
            conn.execute(
                """INSERT INTO closeout_data.expense_sweep_seen (sync_run_id, source_id)
                   SELECT %s, source_id FROM closeout_data.expense_heads
                   WHERE source = 'harvest' AND spent_date = %s AND source_id <> %s""",
                (run, expense.spent_date, str(expense.expense_id)),
            )
            gone = store.mark_vanished(conn, source="harvest", sync_run_id=run, window_from=expense.spent_date,
                                       window_to=expense.spent_date)  # fmt: skip
            conn.commit()
        assert gone == [str(expense.expense_id)]


def _sync_run(conn) -> int:
    (run,) = conn.execute(
        """INSERT INTO closeout_data.sync_runs (source, mode, status) VALUES ('harvest', 'import', 'succeeded')
           RETURNING sync_run_id"""
    ).fetchone()
    return run


def policy_file(tmp_path: Path, monkeypatch, **raw: Any) -> Path:
    """The expense books configuration as a JSON file, used by every posting from now on."""
    path = tmp_path / "expenses.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    monkeypatch.setenv("CLOSEOUT_EXPENSE_BOOKS_CONFIG", str(path))
    return path


def expense_journals(warehouse, source_id: str | int) -> list[tuple]:
    """(version, change, currency, ((role, debit, credit), ...)) of an expense's journals, in version order."""
    out = []
    for jid, version, change, currency in warehouse.rows(
        """SELECT journal_id, version, change, currency FROM closeout.expense_journals
           WHERE source = 'harvest' AND source_id = %s ORDER BY version, currency""",
        (str(source_id),),
    ):
        lines = tuple(warehouse.rows(
            """SELECT role, debit_minor, credit_minor FROM closeout.ledger_lines WHERE journal_id = %s
               ORDER BY line_no""", (jid,)))  # fmt: skip
        out.append((version, change, currency, lines))
    return out


def balances(warehouse, *roles: str) -> dict[tuple[str, str], int]:
    """(role, currency) -> debit minus credit over every posted line of those roles."""
    return {(r, c): int(b) for r, c, b in warehouse.rows(
        """SELECT role, currency, sum(debit_minor - credit_minor) FROM closeout.ledger_lines
           WHERE role = ANY(%s) GROUP BY role, currency""", (list(roles),))}  # fmt: skip


def check_balanced(warehouse) -> None:
    """Invariant 4 over every journal, and debits = credits per currency over the whole ledger."""
    assert warehouse.rows("SELECT journal_id FROM closeout.journal_balance WHERE NOT balanced") == []
    assert warehouse.rows(
        """SELECT currency FROM closeout.ledger_lines GROUP BY currency
           HAVING sum(debit_minor) <> sum(credit_minor)"""
    ) == []


def minor(amount: str, exponent: int = 2) -> int:
    return int(Decimal(amount).scaleb(exponent))


def invoice_with_expenses(warehouse) -> str:
    """Client c1 (10% markup on expenses): 2 h at 100.00 and two approved billable travel expenses, drafted,
    published and followed (the invoice and the expenses are posted)."""
    from billing_support import Entry
    from closeout.payments import tasks as payment_tasks
    from payments_support import last_month

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "expense_billing"))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ledger"))
    from expense_billing_support import Expense as BilledExpense
    from expense_billing_support import ExpenseBooks
    from ledger_support import follow

    day = last_month()
    with connect() as conn:
        books = ExpenseBooks(conn)
        books.configure({"defaults": {"require_approval": False},
                         "clients": [{"client_key": "harvest:c1", "currency": "USD", "name": "Client C1",
                                      "email": "ap@c1.example", "expense_markup_percent": 10}]})  # fmt: skip
        books.put(Entry("t1", hours=Decimal("2"), rate=Decimal("100.00"), spent_date=day))
        books.put_expenses(BilledExpense("e1", total=Decimal("30.00"), spent_date=day),
                           BilledExpense("e2", total=Decimal("12.35"), spent_date=day))  # fmt: skip
        books.draft()
        conn.commit()
    payment_tasks.publish_drafts("publish")
    follow()
    (invoice_id,) = [r[0] for r in warehouse.rows("SELECT invoice_id FROM closeout.invoices WHERE status = 'open'")]
    return invoice_id
