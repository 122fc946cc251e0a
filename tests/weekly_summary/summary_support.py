"""A small agency's week captured through closeout_sync_harvest from the Harvest sandbox (dag.test, real
Postgres), the payee file that costs it, the artifact store in a temporary folder, and a local SMTP receiver for
finance. Shared by the weekly summary tests and the browser tests.

The week (last ISO week before today, inside the sync's window), by hand:

* Client A (USD, named with 120 characters), project "Support Retainer":
  Xenia (payee, 50.00 USD/h): 2.5 h billable at 150.00 and 1.0 h non-billable, approved;
  Ben (no payee file entry: no cost rate): 3.0 h billable at 150.00, approved; 1.25 h not approved.
  Expenses (Xenia): 20.00 billable and 30.00 non-billable, approved; 99.00 not approved.
* Client B (EUR), project named like a spreadsheet formula: Xenia 4.0 h billable at 120.00 EUR, approved;
  her cost is in USD (her payee currency), so client B has a EUR row (value) and a USD row (cost): never mixed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gate"))
from gate_support import SMTP_LOGIN, SmtpReceiver

from sandbox.harvest import generate_dataset

LONG_NAME = ("Kraków Design and Engineering Cooperative for Extremely Long Legal Names of Clients, Subsidiaries "
             "and Holdings Group Ltd")  # fmt: skip
assert len(LONG_NAME) == 120, len(LONG_NAME)
HOSTILE_PROJECT = '=HYPERLINK("http://evil.example","Marketing")'
CLIENT_A, CLIENT_B = 5735007, 5735013
PROJECT_A, PROJECT_B = 14300024, 14300049
XENIA, BEN = 1780003, 1780024
SYNC_DAG = "closeout_sync_harvest"
SUMMARY_DAG = "closeout_weekly_summary"


def key(n: int) -> str:
    return f"harvest:{n}"


@dataclass
class Agency:
    harvest: object
    week_start: date
    artifacts: Path
    entry_ids: dict[str, int]

    @property
    def week(self) -> str:
        year, week, _ = self.week_start.isocalendar()
        return f"{year:04d}-W{week:02d}"


def last_iso_week(today: date) -> date:
    return today - timedelta(days=today.weekday()) - timedelta(weeks=1)


def payees_file(folder: Path) -> Path:
    path = folder / "payees.yaml"
    path.write_text(json.dumps({"payees": [
        {"user_key": key(XENIA), "cost_rate": "50.00", "currency": "USD", "account_id": "acct_1XENIA",
         "name": "Xenia Z."},
    ]}))  # fmt: skip
    return path


def fill_week(harvest, monday: date) -> dict[str, int]:
    """The week above, in the Harvest sandbox (entries on Tuesday, Wednesday and Thursday)."""
    harvest.load(generate_dataset(0, seed=3, anchor=date.today(), n_clients=3))
    harvest._clients[CLIENT_A]["name"] = LONG_NAME
    harvest._projects[PROJECT_B]["name"] = HOSTILE_PROJECT
    tue, wed, thu = (monday + timedelta(days=n) for n in (1, 2, 3))
    ids = {}

    def entry(name: str, **fields) -> None:
        ids[name] = harvest.create_entry(**fields)["id"]

    entry("xenia_a_billable", project_id=PROJECT_A, user_id=XENIA, spent_date=tue.isoformat(), hours=2.5,
          billable=True, billable_rate=150.0, is_closed=True)  # fmt: skip
    entry("xenia_a_internal", project_id=PROJECT_A, user_id=XENIA, spent_date=wed.isoformat(), hours=1.0,
          billable=False, is_closed=True)  # fmt: skip
    entry("ben_a_billable", project_id=PROJECT_A, user_id=BEN, spent_date=wed.isoformat(), hours=3.0, billable=True,
          billable_rate=150.0, is_closed=True)  # fmt: skip
    entry("ben_a_open", project_id=PROJECT_A, user_id=BEN, spent_date=thu.isoformat(), hours=1.25, billable=True,
          billable_rate=150.0, is_closed=False)  # fmt: skip
    entry("xenia_b_billable", project_id=PROJECT_B, user_id=XENIA, spent_date=thu.isoformat(), hours=4.0,
          billable=True, billable_rate=120.0, is_closed=True)  # fmt: skip
    book = harvest.expenses
    book.create_expense(project_id=PROJECT_A, user_id=XENIA, spent_date=tue.isoformat(), total_cost=20.0,
                        billable=True, is_closed=True)  # fmt: skip
    book.create_expense(project_id=PROJECT_A, user_id=XENIA, spent_date=wed.isoformat(), total_cost=30.0,
                        billable=False, is_closed=True)  # fmt: skip
    book.create_expense(project_id=PROJECT_A, user_id=XENIA, spent_date=thu.isoformat(), total_cost=99.0,
                        billable=True, is_closed=False)  # fmt: skip
    return ids


@pytest.fixture
def agency(warehouse, harvest, run_dag, tmp_path, monkeypatch) -> Agency:
    """The week synced into the warehouse by closeout_sync_harvest; artifacts and payees in tmp_path."""
    monkeypatch.setenv("CLOSEOUT_ARTIFACTS_URL", str(tmp_path / "artifacts"))
    monkeypatch.delenv("CLOSEOUT_ARTIFACTS_PUBLIC_URL", raising=False)
    monkeypatch.delenv("CLOSEOUT_REPORTS_URL", raising=False)
    monkeypatch.setenv("CLOSEOUT_PAYEES_CONFIG", str(payees_file(tmp_path)))
    monday = last_iso_week(date.today())
    ids = fill_week(harvest, monday)
    result = run_dag(SYNC_DAG)
    assert result.state == "success", result
    return Agency(harvest, monday, tmp_path / "artifacts", ids)


@pytest.fixture
def finance_mail(monkeypatch) -> Iterator[SmtpReceiver]:
    receiver = SmtpReceiver(credentials=SMTP_LOGIN).start()
    monkeypatch.setenv("AIRFLOW_CONN_FINANCE_SMTP", json.dumps(
        {"conn_type": "smtp", "host": "127.0.0.1", "port": receiver.port, "login": SMTP_LOGIN[0],
         "password": SMTP_LOGIN[1],
         "extra": {"from": "closeout@company.test", "to": ["ana@finance.test", "ben@finance.test"],
                   "starttls": False, "timeout": 10}}))  # fmt: skip
    yield receiver
    receiver.stop()
