"""The close report API: what the month-end close DAG calls last, and what the gate alert and run notes link to.

- ``reports_location()``: where reports go (``CLOSEOUT_REPORTS_URL``: a path, ``file://`` or object-store URL).
- ``report_url(period, dry_run=, location=)``: the period's ``index.html``, computable before it is written.
- ``build_report(conn, period, steps=, dry_run=, close_run_id=, history=)``: the figures, from the public views.
- ``write_report(report, location=)``: ``{"html", "csv", "json"}`` URLs; same data, same bytes; overwrites.

The parts live in ``report_data`` (queries, totals, tie-outs), ``charts`` (inline SVG), ``report_html`` (the page)
and ``report_files`` (locations, CSV/JSON, writing).
"""

from __future__ import annotations

from closeout.close.report_data import (
    CashCurrency,
    ClientCollections,
    ClientFigures,
    CloseReport,
    CurrencyTotals,
    ReportError,
    TieOut,
    build_report,
    parse_period,
)
from closeout.close.report_files import (
    LOCATION_ENV,
    data_names,
    report_csv,
    report_document,
    report_json,
    report_url,
    reports_location,
    write_files,
)
from closeout.close.report_html import render_html


def write_report(report: CloseReport, location: str | None = None) -> dict[str, str]:
    """Write the page and its data files to the period's folder under ``location`` (default
    ``reports_location()``); returns their URLs. Idempotent: writing again overwrites with the same bytes."""
    names = data_names(report.period)
    return write_files(report, render_html(report, names), location)


__all__ = [
    "LOCATION_ENV",
    "CashCurrency",
    "ClientCollections",
    "ClientFigures",
    "CloseReport",
    "CurrencyTotals",
    "ReportError",
    "TieOut",
    "build_report",
    "parse_period",
    "render_html",
    "report_csv",
    "report_document",
    "report_json",
    "report_url",
    "reports_location",
    "write_report",
]
