"""Where close reports live and how their data files are encoded.

The location is ``reports/`` in the artifact store (``CLOSEOUT_ARTIFACTS_URL``, docs/artifacts.md), written with the
``closeout_artifacts`` connection's credentials; ``CLOSEOUT_REPORTS_URL`` overrides it with a local folder or any URL
an fsspec backend handles (``memory://`` in tests), reached through Airflow's ``ObjectStoragePath``. A period's
report sits at a path computed from the period alone, so the close DAG can link to it (run notes, the finance alert)
before it is written; a dry run writes beside it, under ``dry-run/``, and never over a real close's report. What is
recorded is the location; people get links made by ``closeout.artifacts.link`` where the location is shown.

The CSV and JSON are deterministic: rows sorted by the queries, keys sorted, money as integer minor units plus a
major-unit string (never a float), and no timestamp other than the report's own ``generated_at`` (JSON only).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from closeout.accounting.csv_safe import Number, decimal_number, encode_row, major_units
from closeout.close.report_data import CloseReport, parse_period

LOCATION_ENV = "CLOSEOUT_REPORTS_URL"
HTML_NAME = "index.html"
DRY_RUN_DIR = "dry-run"


def reports_location() -> str:
    """``CLOSEOUT_REPORTS_URL`` (a path, ``file://...`` or an object-storage URL) as an override, else
    ``reports/`` under the artifacts location (``CLOSEOUT_ARTIFACTS_URL``, docs/artifacts.md)."""
    from closeout import artifacts

    return os.environ.get(LOCATION_ENV) or artifacts.path("reports")


def _base(location: str | None):
    from airflow.sdk import ObjectStoragePath

    where = (location or reports_location()).rstrip("/")
    if "://" not in where:  # a plain path: absolute, so the link is the same whoever reads it
        where = str(Path(where).expanduser().absolute())
    return ObjectStoragePath(where)


def _folder(period: str, dry_run: bool, location: str | None):
    parse_period(period)
    folder = _base(location) / period
    return folder / DRY_RUN_DIR if dry_run else folder


def report_url(period: str, *, dry_run: bool = False, location: str | None = None) -> str:
    """Where the period's ``index.html`` is (or will be): computable before the report exists."""
    return str(_folder(period, dry_run, location) / HTML_NAME)


def data_names(period: str) -> dict[str, str]:
    """File names of the report's parts; the data files carry the period so a download names itself."""
    return {"html": HTML_NAME, "csv": f"close-report-{period}.csv", "json": f"close-report-{period}.json"}


# -- JSON ---------------------------------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def with_major(row: dict[str, Any], exponent: int | None = None) -> dict[str, Any]:
    """The row with, beside every ``<name>_minor`` amount, ``<name>`` in major units as an exact string."""
    exp = row.get("exponent") if exponent is None else exponent
    out = dict(row)
    if exp is None:
        return out
    for key, value in row.items():
        if key.endswith("_minor") and isinstance(value, int) and not isinstance(value, bool):
            out[key.removesuffix("_minor")] = major_units(value, int(exp)).text
    return out


def report_document(report: CloseReport) -> dict[str, Any]:
    """Everything the page shows, as one JSON-ready document (money in minor units plus major strings)."""
    totals = []
    for t in report.totals:
        row = with_major({k: v for k, v in asdict(t).items() if k != "tie_outs"})
        row["ties_out"] = t.ties_out
        row["exceptions"] = t.exceptions
        row["tie_outs"] = [with_major({**asdict(x), "difference_minor": x.difference_minor, "ties_out": x.ties_out})
                           for x in t.tie_outs]  # fmt: skip
        totals.append(row)
    payouts = dict(report.payouts)
    payouts["by_status"] = [with_major(r) for r in payouts.get("by_status", [])]
    return {
        "period": report.period,
        "period_start": report.period_start,
        "period_end": report.period_end,
        "dry_run": report.dry_run,
        "close_run_id": report.close_run_id,
        "generated_at": report.generated_at,
        "ties_out": report.ties_out,
        "clients": [with_major({**asdict(c), "exceptions": c.exceptions}) for c in report.clients],
        "totals": totals,
        "invoices": [with_major(r) for r in report.invoices],
        "adjustments": [with_major(r) for r in report.adjustments],
        "exceptions": list(report.exceptions),
        "reconciliation": report.recon,
        "reconciliation_history": list(report.recon_history),
        "payouts": payouts,
        "steps": list(report.steps),
        "period_state": report.period_state,
        "earlier_periods_open": [with_major(r) for r in report.earlier_open],
        "headline": {"good": report.headline[0], "said": report.headline[1]},
        "cash": [with_major({**asdict(c), "ties_out": c.ties_out,
                             "tie_outs": [with_major({**asdict(x), "difference_minor": x.difference_minor,
                                                      "ties_out": x.ties_out}) for x in c.tie_outs]})
                 for c in report.cash],
        "collections": [with_major({**asdict(k), "uncollected_minor": k.uncollected_minor})
                        for k in report.collections],
        "dead_payment_links": [with_major(r) for r in report.dead_links],
        "artifacts": [dict(a) for a in report.artifacts],
    }


def report_json(report: CloseReport) -> bytes:
    text = json.dumps(report_document(report), sort_keys=True, indent=2, ensure_ascii=False, default=_plain)
    return (text + "\n").encode("utf-8")


# -- CSV ----------------------------------------------------------------------------------------------------------
CSV_HEADER = (
    "period", "row", "currency", "client_key", "client_name", "hours", "billable_hours", "entries", "invoices",
    "time_billed_minor", "time_billed", "expenses_minor", "expenses", "adjustments_minor", "adjustments",
    "adjustment_lines", "billed_minor", "billed", "paid_minor", "paid", "outstanding_minor", "outstanding",
    "written_off_minor", "written_off", "refunded_minor", "refunded", "drafts", "drafted_minor", "drafted",
    "payment_exceptions", "billing_exceptions", "quarantined", "ties_out",
)  # fmt: skip


def _count(n: int) -> Number:
    """An integer cell (through Decimal: ``format(int, "f")`` would write ``2.000000``)."""
    return Number(Decimal(n))


def _money(amount: int, exponent: int) -> list[Number]:
    return [_count(amount), major_units(amount, exponent)]


def _figures_cells(f: Any) -> list:
    e = f.exponent
    return [
        decimal_number(f.hours), decimal_number(f.billable_hours), _count(f.entry_count), _count(f.invoices),
        *_money(f.time_billed_minor, e), *_money(f.expenses_minor, e), *_money(f.adjustments_minor, e),
        _count(f.adjustment_lines),
        *_money(f.billed_minor, e), *_money(f.paid_minor, e), *_money(f.outstanding_minor, e),
        *_money(f.written_off_minor, e), *_money(f.refunded_minor, e), _count(f.drafts), *_money(f.drafted_minor, e),
        _count(f.payment_exceptions), _count(f.billing_exceptions), _count(f.quarantined),
    ]  # fmt: skip


def report_csv(report: CloseReport) -> bytes:
    """Per client and currency, then one total row per currency with whether it ties out. Text cells are
    formula-neutralised (client names are untrusted and this file is opened in spreadsheets)."""
    rows = [encode_row(CSV_HEADER)]
    for c in report.clients:
        rows.append(encode_row([report.period, "client", c.currency, c.client_key, c.client_name,
                                *_figures_cells(c), None]))  # fmt: skip
    for t in report.totals:
        rows.append(encode_row([report.period, "total", t.currency, None, None, *_figures_cells(t),
                                "yes" if t.ties_out else "no"]))  # fmt: skip
    return b"".join(rows)


# -- writing ------------------------------------------------------------------------------------------------------
def _put(target, data: bytes) -> None:
    """Write one file whole. Local files go to a temporary name first and are renamed into place, so a reader
    never sees half a page; object stores replace an object whole on their own. Under the artifacts location
    the artifact store writes, with the ``closeout_artifacts`` connection's credentials."""
    from closeout import artifacts

    if str(target).startswith(artifacts.base() + "/"):
        artifacts.write(str(target), data)
        return
    if target.protocol in ("", "file"):
        path = Path(target.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def write_files(report: CloseReport, html: bytes, location: str | None = None) -> dict[str, str]:
    """Write the data files first and the page last, so a page that exists always has its data beside it.
    Overwrites: writing the same report again gives the same files."""
    folder = _folder(report.period, report.dry_run, location)
    names = data_names(report.period)
    parts = {"csv": report_csv(report), "json": report_json(report), "html": html}
    urls = {}
    for kind in ("csv", "json", "html"):
        target = folder / names[kind]
        _put(target, parts[kind])
        urls[kind] = str(target)
    return urls
