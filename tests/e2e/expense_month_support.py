"""Issue 16's expense month: what the trackers hold and how closeout is configured for it. Only what the expense
month adds lives here; the chain's steps reuse the write-back helpers (``writeback_support``), the payouts helpers
(``payouts_support``) and the weekly summary's mail receiver (``summary_support``).

The month (last month, so the close may run today), in the sandboxes' default catalogues:

* Harvest, Pied Piper Systems GmbH (USD, 10 % markup on expenses), project "Discovery Phase": the contractor
  (Harvest user 1780012, a payee at 60.00 USD/h) logs 2.0 h and 1.5 h; expenses: Travel 120.00 billable (the
  company paid), Meals 30.00 non-billable (the company paid), Lodging 45.00 non-billable that the contractor paid
  (reimbursable by the expense books rule for Harvest Lodging).
* Harvest, Tyrell Media B.V. (EUR, no markup): a Software expense of 80.00 EUR, billable: the other currency.
* Clockify, the first project's client (workspace currency USD): 3 h at 120.00 and a billable 45.00 Travel
  expense, both approved (the entry's approval state, the expense locked).

Everything is dated inside one ISO week of that month, so the weekly summary of that week covers all of it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from payments_support import last_month

from sandbox.clockify import generate_dataset

USD_PROJECT, USD_CLIENT, TASK = 14300012, 5735002, 8083027  # Harvest: Pied Piper Systems GmbH, USD
EUR_PROJECT, EUR_CLIENT = 14300051, 5735021  # Harvest: Tyrell Media B.V., EUR
CONTRACTOR = 1780012  # Harvest user with payout setup
CONTRACTOR_ACCOUNT = "acct_1ExpenseMonthPayee"
COST_RATE = "60.00"
MARKUP_PERCENT = 10
CATEGORY = {"Meals": 4195926, "Lodging": 4195927, "Travel": 4195928, "Software": 4195930}


def week_monday(month_start: date) -> date:
    """The first Monday of the month whose ISO week (Monday to Sunday) lies inside the month."""
    monday = month_start + timedelta(days=(7 - month_start.weekday()) % 7)
    assert monday.month == month_start.month and (monday + timedelta(days=6)).month == month_start.month
    return monday


def iso_week(monday: date) -> str:
    year, week, _ = monday.isocalendar()
    return f"{year:04d}-W{week:02d}"


@dataclass
class Month:
    """What the trackers were given: ids by name, so assertions can name them."""

    monday: date
    entries: dict[str, int | str] = field(default_factory=dict)
    expenses: dict[str, int | str] = field(default_factory=dict)
    clockify_client: str = ""

    @property
    def period(self) -> str:
        return self.monday.strftime("%Y-%m")

    @property
    def week(self) -> str:
        return iso_week(self.monday)


def fill_trackers(harvest, clockify) -> Month:
    """The month above, written into the Harvest and Clockify sandboxes."""
    monday = week_monday(last_month())
    month = Month(monday)
    tue, wed, thu = (monday + timedelta(days=n) for n in (1, 2, 3))
    for name, day, hours in (("h_work_1", tue, 2.0), ("h_work_2", wed, 1.5)):
        entry = harvest.create_entry(project_id=USD_PROJECT, task_id=TASK, user_id=CONTRACTOR, spent_date=day,
                                     hours=hours, is_closed=True, notes=name)  # fmt: skip
        assert entry["billable"] and entry["billable_rate"] and entry["user"]["id"] == CONTRACTOR, entry
        month.entries[name] = entry["id"]

    def expense(name: str, project: int, day: date, total: float, category: str, billable: bool) -> None:
        made = harvest.expenses.create_expense(project_id=project, user_id=CONTRACTOR, spent_date=day,
                                               total_cost=total, expense_category_id=CATEGORY[category],
                                               billable=billable, is_closed=True, notes=name)  # fmt: skip
        month.expenses[name] = made["id"]

    expense("h_billable", USD_PROJECT, tue, 120.00, "Travel", True)
    expense("h_nonbillable", USD_PROJECT, wed, 30.00, "Meals", False)
    expense("h_reimbursable", USD_PROJECT, thu, 45.00, "Lodging", False)
    expense("h_eur", EUR_PROJECT, thu, 80.00, "Software", True)

    clockify.load(generate_dataset(0, seed=1, anchor=date.today(), days=20))
    project = next(iter(clockify._projects.values()))
    month.clockify_client = f"clockify:{project['clientId']}"
    user = project["memberships"][0]["userId"]
    start = datetime.combine(tue, time(9), tzinfo=UTC)
    month.entries["c_work"] = clockify.create_entry(
        userId=user, projectId=project["id"], billable=True, start=start, end=start + timedelta(hours=3),
        approvalState="APPROVED", hourlyRate={"amount": 12000, "currency": "USD"})["id"]  # fmt: skip
    month.expenses["c_billable"] = clockify.expenses.create_expense(
        userId=user, projectId=project["id"], date=wed, total=4500, billable=True, locked=True)["id"]  # fmt: skip
    return month


def configure(folder: Path, month: Month, env) -> None:
    """Billing (per-client currency and markup), expense books (who paid), payees and every output folder;
    ``env`` is a pytest MonkeyPatch."""
    clients = [
        {"client_key": f"harvest:{USD_CLIENT}", "name": "Pied Piper", "currency": "USD", "grouping": "project",
         "email": "ap@piedpiper.example", "expense_markup_percent": MARKUP_PERCENT},
        {"client_key": f"harvest:{EUR_CLIENT}", "name": "Tyrell", "currency": "EUR", "grouping": "project",
         "email": "ap@tyrell.example"},
        {"client_key": month.clockify_client, "name": "Soylent", "currency": "USD", "grouping": "project",
         "email": "ap@soylent.example"},
    ]  # fmt: skip
    files: dict[str, Any] = {
        "CLOSEOUT_BILLING_CONFIG": ("clients.json", {"defaults": {"require_approval": False}, "clients": clients}),
        "CLOSEOUT_EXPENSE_BOOKS_CONFIG": ("expenses.json", {
            "expense_revenue_mode": "pass_through", "default_reimbursable": False,
            "rules": [{"source": "harvest", "category": "Lodging", "reimbursable": True}]}),
        "CLOSEOUT_PAYEES_CONFIG": ("payees.json", {"payees": [
            {"user_key": f"harvest:{CONTRACTOR}", "cost_rate": COST_RATE, "currency": "USD",
             "account_id": CONTRACTOR_ACCOUNT, "name": "Contractor"}]}),
    }  # fmt: skip
    for var, (name, body) in files.items():
        path = folder / name
        path.write_text(json.dumps(body), encoding="utf-8")
        env.setenv(var, str(path))
    for var, sub in {"CLOSEOUT_EXPORT_DIR": "exports", "CLOSEOUT_DATA_DOCS_DIR": "docs",
                     "CLOSEOUT_REPORTS_URL": "reports", "CLOSEOUT_ARTIFACTS_URL": "artifacts"}.items():  # fmt: skip
        env.setenv(var, str(folder / sub))
    env.delenv("CLOSEOUT_ARTIFACTS_PUBLIC_URL", raising=False)


def check_statuses(warehouse, airflow_run_id: str) -> dict[str, str]:
    """check_name -> status of the reconciliation run that Airflow run recorded."""
    return dict(warehouse.rows(
        """SELECT c.check_name, c.status FROM closeout.recon_checks c JOIN closeout_data.recon_runs r USING (run_id)
           WHERE r.airflow_run_id = %s""", (airflow_run_id,)))  # fmt: skip


def expense_billing(warehouse) -> dict[str, tuple[str, int, int]]:
    """source_id -> (invoice currency, billed amount, billed rows) over closeout.invoice_line_expenses."""
    return {r[0]: (r[1], int(r[2]), int(r[3])) for r in warehouse.rows(
        """SELECT e.source_id, i.currency, sum(e.amount_minor), count(*) FROM closeout.invoice_line_expenses e
           JOIN closeout.invoices i USING (invoice_id) GROUP BY e.source_id, i.currency""")}  # fmt: skip


def role_lines(warehouse, source_id: str | int) -> dict[str, int]:
    """role -> debit minus credit over the journals closeout.expense_journals lists for the expense."""
    return {r: int(b) for r, b in warehouse.rows(
        """SELECT l.role, sum(l.debit_minor - l.credit_minor) FROM closeout.expense_journals j
           JOIN closeout.ledger_lines l USING (journal_id) WHERE j.source_id = %s GROUP BY l.role""",
        (str(source_id),))}  # fmt: skip
