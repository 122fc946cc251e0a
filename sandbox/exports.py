"""The trackers' "detailed time" CSV exports, written from a running sandbox's state.

These are the files a finance team downloads before leaving a tracker; closeout_migrate_history imports
them. Read through each sandbox's own HTTP API (as a person exporting would see the data), so the files
name users, clients and projects exactly as the tracker shows them. ``shift_days`` moves every date back,
to make history that is older than what the API sync holds.
"""

from __future__ import annotations

import csv
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import requests

HARVEST_COLUMNS = [
    "Date",
    "Client",
    "Project",
    "Project Code",
    "Task",
    "Notes",
    "Hours",
    "Hours Rounded",
    "Billable?",
    "Invoiced?",
    "Approved?",
    "First Name",
    "Last Name",
    "Roles",
    "Employee?",
    "Billable Rate",
    "Billable Amount",
    "Cost Rate",
    "Cost Amount",
    "Currency",
    "External Reference URL",
]
CLOCKIFY_COLUMNS = [
    "Project",
    "Client",
    "Description",
    "Task",
    "User",
    "Group",
    "Email",
    "Tags",
    "Billable",
    "Start Date",
    "Start Time",
    "End Date",
    "End Time",
    "Duration (h)",
    "Duration (decimal)",
]
CURRENCY_NAMES = {
    "USD": "US Dollar",
    "EUR": "Euro",
    "GBP": "British Pound",
    "CHF": "Swiss Franc",
    "JPY": "Japanese Yen",
    "KWD": "Kuwaiti Dinar",
}


def _write(path: Path, header: list[str], rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _hms(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def harvest_export(sandbox: Any, path: Path, *, shift_days: int = 0) -> Path:
    users = {u["id"]: u for u in _harvest_all(sandbox, "users")}
    rows = []
    for e in sandbox.entries_snapshot():
        if not isinstance(e, dict) or not isinstance(e.get("id"), int) or e["id"] <= 0:
            continue
        user = users[e["user"]["id"]]
        rate = e.get("billable_rate")
        currency = e["client"]["currency"]
        amount = (
            ""
            if rate is None
            else str((Decimal(str(e["rounded_hours"])) * Decimal(str(rate))).quantize(Decimal("0.01")))
        )
        rows.append(
            {
                "Date": (date.fromisoformat(e["spent_date"]) - timedelta(days=shift_days)).isoformat(),
                "Client": e["client"]["name"],
                "Project": e["project"]["name"],
                "Project Code": e["project"].get("code") or "",
                "Task": e["task"]["name"],
                "Notes": e.get("notes") or "",
                "Hours": e["hours"],
                "Hours Rounded": e["rounded_hours"],
                "Billable?": "Yes" if e["billable"] else "No",
                "Invoiced?": "Yes" if e["is_billed"] else "No",
                "Approved?": "Yes" if e["is_closed"] else "No",
                "First Name": user["first_name"],
                "Last Name": user["last_name"],
                "Roles": "",
                "Employee?": "Yes",
                "Billable Rate": "" if rate is None else rate,
                "Billable Amount": amount,
                "Cost Rate": e.get("cost_rate") or "",
                "Cost Amount": "",
                "Currency": f"{CURRENCY_NAMES.get(currency, currency)} - {currency}",
                "External Reference URL": "",
            }
        )
    return _write(path, HARVEST_COLUMNS, rows)


def _harvest_all(sandbox: Any, resource: str) -> list[dict[str, Any]]:
    url: str | None = f"{sandbox.url}/v2/{resource}?per_page=2000"
    out: list[dict[str, Any]] = []
    while url:
        body = requests.get(url, headers=sandbox.auth_headers(), timeout=30).json()
        out.extend(body[resource])
        url = body["links"]["next"]
    return out


def toggl_export(sandbox: Any, path: Path, *, shift_days: int = 0, currency: str = "USD") -> Path:
    """Toggl's detailed CSV has one Amount column in one currency: export one currency per file."""
    base = f"{sandbox.url}/api/v9/workspaces/{sandbox.workspace_id}"
    users = {u["id"]: u for u in requests.get(f"{base}/users", auth=sandbox.auth, timeout=30).json()}
    clients = {c["id"]: c for c in requests.get(f"{base}/clients", auth=sandbox.auth, timeout=30).json()}
    projects = {p["id"]: p for p in requests.get(f"{base}/projects?per_page=200", auth=sandbox.auth, timeout=30).json()}
    rows = []
    for e in sandbox.entries_snapshot():
        if not e.get("stop") or e.get("duration", -1) < 0 or not e.get("project_id"):
            continue
        minor, cur = sandbox.resolved_rate(e["user_id"], e["project_id"])
        if cur != currency:
            continue
        project = projects[e["project_id"]]
        client = clients.get(project.get("client_id"), {})
        hours = (Decimal(e["duration"]) / 3600).quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)
        amount = (
            (hours * Decimal(minor) / 100).quantize(Decimal("0.01"), ROUND_HALF_UP) if e["billable"] and minor else 0
        )
        start = datetime.fromisoformat(e["start"]) - timedelta(days=shift_days)
        stop = start + timedelta(seconds=e["duration"])
        rows.append(
            {
                "User": users[e["user_id"]]["fullname"],
                "Email": users[e["user_id"]]["email"],
                "Client": client.get("name", ""),
                "Project": project["name"],
                "Task": "",
                "Description": e.get("description") or "",
                "Billable": "Yes" if e["billable"] else "No",
                "Start date": start.date().isoformat(),
                "Start time": start.strftime("%H:%M:%S"),
                "End date": stop.date().isoformat(),
                "End time": stop.strftime("%H:%M:%S"),
                "Duration": _hms(e["duration"]),
                "Tags": "",
                f"Amount ({currency})": f"{amount:.2f}",
            }
        )
    header = [
        "User",
        "Email",
        "Client",
        "Project",
        "Task",
        "Description",
        "Billable",
        "Start date",
        "Start time",
        "End date",
        "End time",
        "Duration",
        "Tags",
        f"Amount ({currency})",
    ]
    return _write(path, header, rows)


def clockify_export(sandbox: Any, path: Path, *, shift_days: int = 0, currency: str = "USD") -> Path:
    """Clockify's detailed CSV names one currency in its rate column: export one currency per file."""
    headers = {"X-Api-Key": sandbox.api_key}
    base = f"{sandbox.api_url}/workspaces/{sandbox.workspace_id}"
    users = {u["id"]: u for u in requests.get(f"{base}/users?page-size=5000", headers=headers, timeout=30).json()}
    projects = {p["id"]: p for p in requests.get(f"{base}/projects?page-size=5000", headers=headers, timeout=30).json()}
    rows = []
    for e in sandbox.entries_snapshot():
        interval = e.get("timeInterval") or {}
        if not e.get("id") or not interval.get("end") or not e.get("projectId"):
            continue
        if e["hourlyRate"]["currency"] != currency:
            continue
        project = projects[e["projectId"]]
        start = datetime.fromisoformat(interval["start"]) - timedelta(days=shift_days)
        end = datetime.fromisoformat(interval["end"]) - timedelta(days=shift_days)
        seconds = int((end - start).total_seconds())
        user = users[e["userId"]]
        rows.append(
            {
                "Project": project["name"],
                "Client": project.get("clientName") or "",
                "Description": e.get("description") or "",
                "Task": "",
                "User": user["name"],
                "Group": "",
                "Email": user["email"],
                "Tags": "",
                "Billable": "Yes" if e["billable"] else "No",
                "Start Date": start.strftime("%m/%d/%Y"),
                "Start Time": start.strftime("%I:%M:%S %p"),
                "End Date": end.strftime("%m/%d/%Y"),
                "End Time": end.strftime("%I:%M:%S %p"),
                "Duration (h)": _hms(seconds),
                "Duration (decimal)": f"{seconds / 3600:.2f}",
                f"Billable Rate ({currency})": f"{Decimal(e['hourlyRate']['amount']) / 100:.2f}",
            }
        )
    return _write(path, [*CLOCKIFY_COLUMNS, f"Billable Rate ({currency})"], rows)
