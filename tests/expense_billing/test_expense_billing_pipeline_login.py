"""Expense drafting and the expense check run as a login in ``closeout_pipeline`` (the role a deployment gives the
``closeout_warehouse`` connection), on a warehouse that already holds drafts: the grants of migration 0035 are
enough, and the expense tables refuse what the pipeline must never do (rewrite billing history)."""

from __future__ import annotations

import sys
from datetime import date
from decimal import Decimal as D
from pathlib import Path

import psycopg
import pytest
from closeout.recon.checks import CHECKS
from closeout.recon.runner import run_reconciliation
from closeout.warehouse.db import connect
from expense_billing_support import Expense, ExpenseBooks, check_expense_invariants

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "controls"))
from controls_support import connect_as, login_in


def test_the_pipeline_login_drafts_and_reconciles_expenses(warehouse, tmp_path) -> None:
    with connect() as conn:  # the owner: configuration and a first draft, as a deployment's first run
        books = ExpenseBooks(conn)
        books.configure({"clients": [{"client_key": "harvest:c1", "currency": "USD", "expense_markup_percent": 5}]})
        books.put_expenses(Expense("1", total=D("20.00")))
        books.draft()
        conn.commit()
    with login_in("closeout_pipeline") as pipeline, connect_as(pipeline) as conn:
        books = ExpenseBooks(conn)
        books.put_expenses(Expense("2", total=D("7.00"), spent_date=date(2026, 10, 9)))
        summary = books.draft()
        assert summary.expense_rows_added == 1
        check_expense_invariants(conn, {"1": 2100, "2": 735})
        conn.commit()
        for statement in ("DELETE FROM closeout_data.invoice_line_expenses",
                          "UPDATE closeout_data.invoice_line_expenses SET amount_minor = 0"):  # fmt: skip
            with pytest.raises(psycopg.Error):
                conn.execute(statement)
            conn.rollback()
        checks = tuple(c for c in CHECKS if c.name == "expenses_to_invoice_lines")
        result = run_reconciliation(conn, data_docs_dir=tmp_path / "docs", checks=checks)
        assert [(c.check_name, c.status) for c in result.checks] == [("expenses_to_invoice_lines", "passed")]
