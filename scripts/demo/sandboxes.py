"""The vendors of the demo: Harvest, Toggl Track, Clockify and Stripe sandboxes on 127.0.0.1, with generated
work covering the month being closed, wired to closeout through the same ``AIRFLOW_CONN_*`` connections an
installation sets; plus the billing and payee files that name the generated clients and contractors.

Each tracker keeps its vendor's documented rate limits on (Harvest 100 requests / 15 s, Toggl's paid-plan
hourly quota and burst limit, Clockify's paid plan), so the syncs pace themselves as they would in production.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

STRIPE_TENS_ONLY = {"KWD", "BHD", "JOD", "OMR", "TND"}  # Stripe: amounts in these must end in 0
COST_RATES = ("45.00", "52.50", "60.00", "68.00")  # what an hour of a contractor costs, in USD


def month_bounds(period: date) -> tuple[date, date]:
    """First and last day of the month ``period`` falls in."""
    first = period.replace(day=1)
    return first, (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)


def _set_conn(conn_id: str, fields: dict[str, Any]) -> None:
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(fields)


@dataclass
class Vendors:
    """The running sandboxes (each a ``sandbox.*`` server) and the month of work each tracker serves."""

    harvest: Any
    toggl: Any
    clockify: Any
    stripe: Any
    datasets: dict[str, Any]

    def stop(self) -> None:
        for sandbox in (self.harvest, self.toggl, self.clockify, self.stripe):
            sandbox.stop()


def _day(tracker: str, entry: Any) -> date | None:
    if tracker == "harvest":
        return date.fromisoformat(entry.spent_date) if entry.spent_date else None
    return datetime.fromtimestamp(entry.start, UTC).date() if entry.start is not None else None


def month_of_work(tracker: str, dataset: Any, first: date, last: date, keep: int) -> Any:
    """The dataset with only ``keep`` of its entries dated in [first, last], evenly spread (in order: the
    sandboxes rely on it). The generators size their teams by the entries of a whole year: generating a year
    and keeping part of one month gives a month with a believable team and believable hours per day.

    Work for Harvest's KWD clients is left out: Stripe takes KWD only in multiples of 10 fils, which hours
    times a rate rarely give, so closeout rightly stops such an invoice (closeout.payment_exceptions) and the
    publish run fails; that is a decision for the client's billing terms, not a demo."""
    left_out = {c["id"] for c in dataset.clients if c.get("currency") in STRIPE_TENS_ONLY}
    month = [e for e in dataset.entries if (day := _day(tracker, e)) is not None and first <= day <= last
             and getattr(e, "client_id", None) not in left_out]
    step = max(len(month) / max(keep, 1), 1.0)
    kept = [month[int(i * step)] for i in range(min(keep, len(month)))]
    return replace(dataset, entries=kept)


def start_vendors(period_start: date, entries: int) -> Vendors:
    """Generate ``entries`` time entries over the month of ``period_start`` (a third in each tracker) and serve
    them, with an empty Stripe account beside them."""
    from sandbox.clockify import ClockifySandbox
    from sandbox.clockify import generate_dataset as clockify_data
    from sandbox.harvest import HarvestSandbox
    from sandbox.harvest import generate_dataset as harvest_data
    from sandbox.stripe import StripeSandbox
    from sandbox.toggl import TogglSandbox
    from sandbox.toggl import generate_dataset as toggl_data

    first, last = month_bounds(period_start)
    each = entries // 3
    year = {"anchor": last, "days": 365, "seed": 2026}
    generated = {
        "harvest": harvest_data(max(50_000, each * 80), n_clients=12, **year),  # 20 people, 12 clients
        "toggl": toggl_data(max(12_000, each * 20), n_users=10, **year),
        "clockify": clockify_data(max(50_000, each * 80), **year),
    }
    datasets = {tracker: month_of_work(tracker, data, first, last, each) for tracker, data in generated.items()}

    harvest = HarvestSandbox(rate_limit=(100, 15.0))
    harvest.load(datasets["harvest"])
    _set_conn("harvest_default", {"conn_type": "http", "host": harvest.start(), "password": harvest.token,
                                  "extra": {"account_id": harvest.account_id,
                                            "user_agent": "closeout demo (demo@example.com)"}})  # fmt: skip

    toggl = TogglSandbox(quota=600, short_term=(3, 1.0))
    toggl.load(datasets["toggl"])
    toggl.start()
    _set_conn("toggl_default", {"conn_type": "http", "host": toggl.url, "password": toggl.token,
                                "extra": {"workspace_id": toggl.workspace_id, "requests_per_hour": 600,
                                          "short_term": [3, 1]}})  # fmt: skip

    clockify = ClockifySandbox(limit="paid")
    clockify.load(datasets["clockify"])
    clockify.start()
    _set_conn("clockify_default", {"conn_type": "http", "host": clockify.api_url, "password": clockify.api_key,
                                   "extra": {"workspace_id": clockify.workspace_id,
                                             "reports_url": clockify.reports_url}})  # fmt: skip

    webhook_secret = f"whsec_{secrets.token_hex(16)}"
    stripe = StripeSandbox(webhook_secret=webhook_secret, seed=2026)
    stripe.start()
    _set_conn("stripe_default", {"conn_type": "http", "host": stripe.url, "password": stripe.secret_key,
                                 "extra": {"webhook_secret": webhook_secret}})  # fmt: skip
    # the first sync of a windowed tracker reaches back to the start of the closed month, not a year
    today = datetime.now(UTC).date()
    os.environ["AIRFLOW_VAR_CLOSEOUT_SYNC"] = json.dumps({"history_days": (today - period_start).days + 1})
    return Vendors(harvest, toggl, clockify, stripe, datasets)


def client_currencies(tracker: str, dataset: Any) -> dict[Any, set[str]]:
    """client id -> the currencies its month of work is priced in, as the tracker prices it (Harvest per
    client, Toggl per project, Clockify per entry's resolved rate)."""
    projects = {p["id"]: p for p in dataset.projects}
    currencies = {c["id"]: c.get("currency") for c in dataset.clients}
    found: dict[Any, set[str]] = {}
    for entry in dataset.entries:
        if tracker == "harvest":
            client, currency = entry.client_id, currencies.get(entry.client_id)
        else:
            project = projects.get(entry.project_id) or {}
            client = project.get("client_id") or project.get("clientId")
            currency = project.get("currency") if tracker == "toggl" else entry.currency
        if client is not None and currency:
            found.setdefault(client, set()).add(currency)
    return found


def write_billing_config(folder: Path, datasets: dict[str, Any]) -> Path:
    """Every generated client whose work is priced in one currency, by its tracker name, with that currency and
    an accounts-payable address. The shipped defaults (monthly, approved time only, published automatically
    once the month is over, each entry in its own currency) bill the rest, one invoice per currency."""
    clients = []
    for tracker, dataset in datasets.items():
        currencies = client_currencies(tracker, dataset)
        for client in dataset.clients:
            if len(currencies.get(client["id"], ())) != 1:
                continue
            slug = "".join(ch for ch in client["name"].lower() if ch.isalnum())[:24] or "client"
            [currency] = currencies[client["id"]]
            clients.append({"client_key": f"{tracker}:{client['id']}", "name": client["name"],
                            "currency": currency, "email": f"ap@{slug}.example"})  # fmt: skip
    path = folder / "clients.json"
    path.write_text(json.dumps({"clients": clients}, indent=1), encoding="utf-8")
    os.environ["CLOSEOUT_BILLING_CONFIG"] = str(path)
    return path


def write_payees(folder: Path, datasets: dict[str, Any]) -> Path:
    """Every generated user is a contractor paid in USD to a connected account, except the last user of each
    tracker: their work is reported in closeout.payout_exceptions instead of paid, as in production."""
    payees = []
    for tracker, dataset in datasets.items():
        for n, user in enumerate(dataset.users[:-1]):
            name = user.get("name") or user.get("fullname") or f"{user.get('first_name')} {user.get('last_name')}"
            payees.append({"user_key": f"{tracker}:{user['id']}", "name": name or None,
                           "cost_rate": COST_RATES[n % len(COST_RATES)], "currency": "USD",
                           "account_id": f"acct_demo_{tracker}_{n + 1}"})  # fmt: skip
    path = folder / "payees.json"
    path.write_text(json.dumps({"payees": payees}, indent=1), encoding="utf-8")
    os.environ["CLOSEOUT_PAYEES_CONFIG"] = str(path)
    return path
