"""The close report as one self-contained HTML page: inline CSS and SVG, no script, no remote asset, so it
opens the same from a laptop folder, an object-store link or an e-mail attachment.

Rendered with Jinja2 (an Airflow dependency) with autoescaping on: client names, descriptions and exception
messages are untrusted input. Links are only emitted for http(s) and file URLs (local paths become file URLs),
so a hostile value can never become a ``javascript:`` link.
"""

from __future__ import annotations

from decimal import Decimal
from functools import cache
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from markupsafe import Markup

from closeout.close import charts
from closeout.close.report_data import CloseReport
from closeout.paths import resource

SAFE_SCHEMES = ("http", "https", "file")
LIST_LIMIT = 500  # rows per detail list on the page (exceptions, adjustments, invoices); the JSON has them all


def template_dir() -> Path:
    return resource("close")


@cache
def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())), autoescape=True, keep_trailing_newline=True
    )
    env.filters["hours"] = lambda value: charts.hours_text(Decimal(value))
    return env


def safe_link(target: str | None) -> str | None:
    """A URL fit for an href, or None. Absolute local paths (GX Data Docs are files) become file URLs."""
    if not target:
        return None
    from closeout.artifacts import link

    target = str(link(str(target)))  # artifacts (Data Docs, exports) become presigned or public links
    if target.startswith("/"):
        return PurePosixPath(target).as_uri()
    scheme = urlsplit(target).scheme.lower()
    return target if scheme in SAFE_SCHEMES else None


def render_html(report: CloseReport, names: dict[str, str]) -> bytes:
    """The page, as UTF-8 bytes. ``names`` are the data files' names (linked relatively: they sit beside it)."""
    # Markup below: the charts escape every text they draw, and the stylesheet is our own file (inside <style>
    # entities are not decoded, so escaping it would break it)
    figure_charts = [Markup(charts.client_figures_chart(report.clients, t.currency))  # noqa: S704
                     for t in report.totals]  # fmt: skip
    text = _environment().get_template("report.html.j2").render(
        r=report,
        css=Markup((template_dir() / "report.css").read_text(encoding="utf-8")),  # noqa: S704
        money=charts.money_text,
        link=safe_link,
        names=names,
        limit=LIST_LIMIT,
        figure_charts=[c for c in figure_charts if c],
        recon_chart=Markup(charts.recon_status_grid(report.recon_history)),  # noqa: S704
        cash_charts=[Markup(charts.cash_waterfall(c)) for c in report.cash],  # noqa: S704
        margin_view=_margin_view(report),
    )
    return text.encode("utf-8")


def _margin_view(report: CloseReport) -> Markup:
    """The margin per client section (closeout.summary.month), the weekly summary's view for the month."""
    from closeout.summary.month import margin_section

    return margin_section(report.period, report.margins, report.margin_names)
