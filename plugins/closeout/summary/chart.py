"""The weekly summary's charts: per client of one currency, billable value against contractor cost, non-billable
expenses and the margin left.

Two renderings of the same geometry:

* ``margin_svg``: inline SVG for the page, drawn with the close report's helpers (``closeout.close.charts``:
  Decimal geometry, escaped labels), no script, scales down with the page (viewBox).
* ``margin_mail_bars``: the e-mail's chart as an HTML table whose cells are the bars. Mail clients do not run SVG
  reliably (Gmail drops it, Outlook for Windows renders mail with Word's engine), and a CID-attached PNG would
  need an image encoder plus the reader's consent to show images; table cells with a background colour and a
  percentage width render in every client, are readable as text when colour is off, and carry the figures
  themselves, not a picture of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from html import escape

from closeout.close.charts import _label, _n, _scale, money_text
from closeout.summary.figures import Margin

VALUE_COLOUR, COST_COLOUR, EXPENSE_COLOUR, MARGIN_COLOUR, LOSS_COLOUR = (
    "#4c78a8", "#e45756", "#f58518", "#54a24b", "#b279a2")  # fmt: skip
MAX_CLIENTS = 30
SERIES = (("billable value", VALUE_COLOUR, "billable_value_minor"), ("contractor cost", COST_COLOUR, "cost_minor"),
          ("non-billable expenses", EXPENSE_COLOUR, "nonbillable_expenses_minor"),
          ("margin", MARGIN_COLOUR, "margin_minor"))  # fmt: skip


def _rows(margins: Sequence[Margin], currency: str) -> list[Margin]:
    rows = [m for m in margins if m.currency == currency and m.client_key]
    return sorted(rows, key=lambda m: (-m.billable_value_minor, -m.cost_minor, m.client_key or ""))


def margin_svg(margins: Sequence[Margin], currency: str, names: dict[str, str]) -> str:
    """One currency's clients as grouped horizontal bars; a negative margin is drawn left of zero in its own
    colour. The largest ``MAX_CLIENTS`` clients by value are drawn; a note says how many more the table has."""
    rows = _rows(margins, currency)
    shown = rows[:MAX_CLIENTS]
    if not shown:
        return ""
    label_w, bar_x0, plot_w, bar_h, gap = 200, 210, 480, 11, 2
    row_h = len(SERIES) * (bar_h + gap) + 10
    top = 56
    height = top + row_h * len(shown) + 26
    width = bar_x0 + plot_w + 120
    high = max([1, *(getattr(m, f) for m in shown for *_, f in SERIES)])
    low = min([0, *(m.margin_minor for m in shown)])
    span = high - low
    zero_x = bar_x0 + _scale(-low, span, plot_w) if low < 0 else Decimal(bar_x0)
    title = f"Billable value, cost and margin per client ({currency})"
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart margin-chart" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text x="{bar_x0}" y="16" class="panel">{escape(title)}</text>',
    ]
    legend_x = bar_x0
    for what, colour, _ in SERIES:
        out.append(f'<rect x="{legend_x}" y="26" width="10" height="10" fill="{colour}"/>'
                   f'<text x="{legend_x + 14}" y="35" class="legend">{what}</text>')  # fmt: skip
        legend_x += 30 + 7 * len(what)
    out.append(f'<line x1="{_n(zero_x)}" y1="{top - 4}" x2="{_n(zero_x)}" y2="{height - 20}" class="axis" '
               'stroke="#1f2328"/>')  # fmt: skip
    exponent = shown[0].exponent
    out.append(f'<text x="{bar_x0 + plot_w}" y="{height - 6}" class="tick" text-anchor="end">'
               f"{escape(money_text(high, exponent))}</text>")  # fmt: skip
    for i, m in enumerate(shown):
        y = top + i * row_h
        name = names.get(m.client_key or "", "") or (m.client_key or "")
        out.append(f"<g><title>{escape(name)} ({escape(m.client_key or '')})</title>"
                   f'<text x="{label_w}" y="{y + row_h // 2}" class="label" text-anchor="end">'
                   f"{escape(_label(name))}</text></g>")  # fmt: skip
        for j, (what, colour, field) in enumerate(SERIES):
            amount = getattr(m, field)
            width_px = _scale(abs(amount), span, plot_w)
            x = zero_x - width_px if amount < 0 else zero_x
            fill = LOSS_COLOUR if amount < 0 else colour
            by = y + j * (bar_h + gap)
            text = f"{money_text(amount, m.exponent)} {currency}"
            out.append(f'<rect class="bar" x="{_n(x)}" y="{by}" width="{_n(max(width_px, Decimal("0.5")))}" '
                       f'height="{bar_h}" fill="{fill}"><title>{what}: {escape(text)}</title></rect>')  # fmt: skip
            out.append(f'<text x="{_n(max(x + width_px, zero_x) + 4)}" y="{by + 10}" class="value">'
                       f"{escape(text)}</text>")  # fmt: skip
    out.append("</svg>")
    if len(rows) > len(shown):
        out.append(f'<p class="note">The {len(shown)} clients with the largest billable value are drawn; '
                   f"{len(rows) - len(shown)} more are in the table below.</p>")  # fmt: skip
    return "\n".join(out)


def _percent(amount: int, top: int) -> int:
    if top <= 0 or amount <= 0:
        return 0
    return max(1, int((Decimal(amount) * 100 / Decimal(top)).quantize(Decimal(1), rounding=ROUND_HALF_UP)))


def margin_mail_bars(margins: Sequence[Margin], currency: str, names: dict[str, str], limit: int = 12) -> str:
    """The e-mail chart: one table per currency, one row per client and series, the bar a coloured cell whose
    width is its share of the largest amount, the figure written beside it (with the currency)."""
    rows = _rows(margins, currency)[:limit]
    if not rows:
        return ""
    top = max([1, *(abs(getattr(m, f)) for m in rows for *_, f in SERIES)])
    out = [f'<table role="presentation" cellpadding="0" cellspacing="0" border="0" width="100%" '
           f'style="border-collapse:collapse;font:13px Arial,sans-serif;max-width:640px">'
           f'<tr><td colspan="3" style="font-weight:bold;padding:6px 0">Billable value, cost and margin per client '
           f"({escape(currency)})</td></tr>"]  # fmt: skip
    for m in rows:
        name = names.get(m.client_key or "", "") or (m.client_key or "")
        out.append(f'<tr><td colspan="3" style="padding:6px 0 2px;font-weight:bold;word-break:break-word">'
                   f"{escape(name)}</td></tr>")  # fmt: skip
        for what, colour, field in SERIES:
            amount = getattr(m, field)
            pct = _percent(abs(amount), top)
            fill = LOSS_COLOUR if amount < 0 else colour
            bar = (f'<table role="presentation" cellpadding="0" cellspacing="0" border="0" width="{pct}%"><tr>'
                   f'<td bgcolor="{fill}" style="background:{fill};height:10px;font-size:1px;line-height:1px">'
                   "&nbsp;</td></tr></table>") if pct else ""  # fmt: skip
            out.append(f'<tr><td style="width:130px;padding:1px 6px 1px 0;color:#59636e">{what}</td>'
                       f'<td style="padding:1px 0">{bar}</td>'
                       f'<td style="width:130px;padding:1px 0 1px 6px;text-align:right;white-space:nowrap">'
                       f"{escape(money_text(amount, m.exponent))} {escape(currency)}</td></tr>")  # fmt: skip
    out.append("</table>")
    return "".join(out)
