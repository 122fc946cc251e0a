"""The weekly summary as one self-contained HTML page (inline CSS and SVG, no script, no remote asset): it opens
the same from the artifact store, a laptop folder or a phone. Rendered with Jinja2, autoescape on (client,
project and people names are tracker text)."""

from __future__ import annotations

from decimal import Decimal
from functools import cache
from pathlib import Path

from markupsafe import Markup

from closeout.close.charts import hours_text, money_text
from closeout.paths import resource
from closeout.summary import chart
from closeout.summary.build import WeeklySummary
from closeout.summary.files import NAMES

LIST_LIMIT = 500  # rows per table on the page (as the close report); the CSV and JSON have them all
MEASURES = {
    "approved_hours": "approved hours", "billable_hours": "billable hours", "nonbillable_hours": "non-billable hours",
    "billable_value_minor": "billable value", "cost_minor": "contractor cost",
    "billable_expenses_minor": "billable expenses", "nonbillable_expenses_minor": "non-billable expenses",
    "margin_minor": "margin", "uncosted_hours": "hours with no cost rate",
}  # fmt: skip


def template_dir() -> Path:
    return resource("summary")


@cache
def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())), autoescape=True, keep_trailing_newline=True
    )
    env.filters["hours"] = lambda value: hours_text(Decimal(value))
    return env


def _figure(exponents: dict[str, int]):
    def figure(measure: str, value: object, currency: str) -> str:
        number = Decimal(str(value))
        if measure.endswith("_minor"):
            return f"{money_text(int(number), exponents.get(currency, 2))} {currency}"
        return f"{hours_text(number)} h"

    return figure


def render_html(s: WeeklySummary, exponents: dict[str, int] | None = None) -> bytes:
    """The page as UTF-8 bytes; the data files are linked by name (they sit beside it)."""
    known = {m.currency: m.exponent for m in s.figures.totals} | dict(exponents or {})
    # Markup: the charts escape every text they draw; the stylesheet is our own file
    charts = [Markup(chart.margin_svg(s.figures.margins, t.currency, s.names))  # noqa: S704
              for t in s.figures.totals]  # fmt: skip
    text = _environment().get_template("summary.html.j2").render(
        s=s,
        css=Markup((template_dir() / "summary.css").read_text(encoding="utf-8")),  # noqa: S704
        money=money_text,
        names=NAMES,
        limit=LIST_LIMIT,
        charts=[c for c in charts if c],
        measure=lambda m: MEASURES.get(m, m),
        figure=_figure(known),
    )
    return text.encode("utf-8")
