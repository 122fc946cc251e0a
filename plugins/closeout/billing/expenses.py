"""Expenses on invoices, exactly once (issue 16 item 2, invariant 10).

The drafting run (closeout.billing.drafting) bills expenses after time, with three SQL steps in
``include/sql/billing/``:

1. ``70_expense_judge``: every current expense (``closeout.expenses``) is judged: billable, or why not
   (deleted, not billable, not approved, already billed in the tracker by someone else, no client). What it
   bills is its cost plus the client's ``expense_markup_percent``, the markup rounded once, half-up, in the
   currency's minor unit. What frozen invoices, locked drafts and corrections already bill is collected.
2. ``80_expense_desired``: what open drafts should hold: an ``expense`` line per category (or per expense)
   and markup on the client's draft of the expense's own currency for the period of its spent date; for an
   expense already billed on something frozen (or in a locked or already invoiced period), the difference as
   an adjustment (``xadj``) or credit (``xcredit``) line on the client's next draft, linked to the line it
   corrects.
3. ``90_expense_apply``: the difference to what open drafts hold is written as one new version of each
   changed draft (rows and lines closed and added, never deleted; totals moved by the lines changed).

Expenses are judged whole each run rather than by a dirty set: a month holds thousands of them, not a
million, and judging all of them makes every cause of change (an edit synced, a client option, the identity
map, a void, a lock) take effect on the next run without marking anything. A run that finds no difference
writes nothing.

Expense lines carry line keys starting with ``x`` (``xexp|``, ``xadj|``, ``xcredit|``), so the time steps,
the time reconciliation (``entries_to_invoice_lines``) and the time corrections leave them alone, and
``closeout_data.invoice_line_expenses`` holds which expense version each line bills.
"""

from __future__ import annotations

import psycopg

EXPENSE_LINE_PREFIX = "x"
EXPENSE_TEMP_TABLES = (
    "expense_frozen", "expense_last_billed", "expense_judged", "expense_adjusting", "expense_desired",
    "expense_desired_lines", "expense_current", "expense_current_lines", "expense_rows_to_close",
    "expense_rows_to_add", "expense_lines_to_close", "expense_lines_to_add", "expense_bumped",
)  # fmt: skip


def expense_counts(conn: psycopg.Connection) -> dict[str, int]:
    """What the run's expense steps changed (read from their temp tables, before they are dropped)."""
    added, closed, lines = conn.execute(
        """SELECT (SELECT count(*) FROM expense_rows_to_add), (SELECT count(*) FROM expense_rows_to_close),
                  (SELECT count(*) FROM expense_lines_to_add)"""
    ).fetchone()
    return {"expense_rows_added": added, "expense_rows_closed": closed, "expense_lines_changed": lines}


def is_expense_line(line_key: str) -> bool:
    """Whether a line bills expenses (its rows are in invoice_line_expenses, not invoice_line_entries)."""
    return line_key.startswith(EXPENSE_LINE_PREFIX)
