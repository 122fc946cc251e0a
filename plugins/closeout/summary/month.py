"""The close report's margin view: the weekly summary's margin per client and currency, for a month.

Same queries and the same arithmetic as the weekly summary (``closeout.summary.figures`` with the ``month``
bucket: cost rounded once per person-project line of the month), so a month's margin and its weeks' margins are
computed the same way. Rendered as a section of the close report page (``closeout.close.report_html``).
"""

from __future__ import annotations

from datetime import date

import psycopg
from markupsafe import Markup

from closeout.summary.figures import Figures, figures_for, names


def month_figures(conn: psycopg.Connection, start: date, end: date) -> tuple[Figures, dict[str, str]]:
    """The month's figures and the names of its clients and uncosted people (in the caller's snapshot)."""
    f = figures_for(conn, "month", start, end)
    keys = {m.client_key for m in f.margins if m.client_key} | {p for m in f.margins for p in m.uncosted_people}
    return f, names(conn, keys)


def margin_section(period: str, f: Figures | None, client_names: dict[str, str]) -> Markup:
    """The section's HTML (empty when the report was built without margins)."""
    if f is None:
        return Markup("")
    from closeout.close.charts import money_text
    from closeout.summary.page import _environment

    html = _environment().get_template("month_margins.html.j2").render(
        period=period, f=f, names=client_names, money=money_text
    )
    return Markup(html)  # noqa: S704 - rendered with autoescape on
