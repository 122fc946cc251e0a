"""Inline SVG charts for the close report, drawn in Python: no JavaScript, no CDN, so the page works offline
and the same data draws the same bytes.

Geometry is computed with ``Decimal`` (money never passes through a float, even on its way to a pixel), and
every piece of text is XML-escaped: client names come from the trackers and are untrusted.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from html import escape

from closeout.accounting.csv_safe import major_units
from closeout.close.report_data import CashCurrency, ClientFigures

HOURS_COLOUR, BILLED_COLOUR, PAID_COLOUR, DRAFT_COLOUR = "#4c78a8", "#e45756", "#54a24b", "#a0a7b0"
IN_COLOUR, OUT_COLOUR, BALANCE_COLOUR = "#54a24b", "#e45756", "#4c78a8"
STATUS_STYLE = {  # status -> (fill, glyph, label); the glyph keeps the grid readable without colour
    "passed": ("#54a24b", "✓", "passed"),
    "failed": ("#e45756", "✗", "failed"),
    "error": ("#f58518", "!", "error"),
    "not_applicable": ("#bab0ac", "–", "not applicable"),
    None: ("#ffffff", "", "no run"),
}
MAX_CLIENTS = 30
LABEL_CHARS = 26


def _n(value: Decimal | int) -> str:
    """A coordinate, to a tenth of a pixel, without exponent notation."""
    return format(Decimal(value).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP), "f")


def _label(text: str, limit: int = LABEL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _scale(value: Decimal | int, top: Decimal | int, width: int) -> Decimal:
    if top <= 0 or value <= 0:
        return Decimal(0)
    return Decimal(value) * width / Decimal(top)


def hours_text(hours: Decimal) -> str:
    return format(hours.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP), "f")


def money_text(amount_minor: int, exponent: int) -> str:
    """Major units with thousands separators (display only: the CSV and JSON carry exact minor units)."""
    text = major_units(amount_minor, exponent).text
    sign, text = ("-", text[1:]) if text.startswith("-") else ("", text)
    whole, _, frac = text.partition(".")
    return sign + f"{int(whole):,}" + (f".{frac}" if frac else "")


def client_figures_chart(clients: Sequence[ClientFigures], currency: str) -> str:
    """Per client of one currency: billable hours (left panel, hours) against billed and paid (right panel, the
    currency). Two panels because hours and money have different units; rows line up so a client reads across.
    The largest ``MAX_CLIENTS`` clients by billed (and drafted) amount are drawn; a note says how many were not."""
    rows = sorted((c for c in clients if c.currency == currency),
                  key=lambda c: (-(c.billed_minor + c.drafted_minor), c.client_key))  # fmt: skip
    shown = rows[:MAX_CLIENTS]
    if not shown:
        return ""
    exponent = shown[0].exponent
    # drafts not issued get a bar of their own when there are any (a dry run, or drafts held back): what would be
    # billed, kept apart from what was
    series = [("billed", BILLED_COLOUR, "billed_minor"), ("paid", PAID_COLOUR, "paid_minor")]
    if any(c.drafted_minor for c in shown):
        series.append(("drafts not issued", DRAFT_COLOUR, "drafted_minor"))
    label_w, hours_x, hours_w, money_x, money_w = 190, 200, 220, 500, 300
    row_h, top = max(34, 8 + 13 * len(series)), 52
    height = top + row_h * len(shown) + 24
    width = money_x + money_w + 110
    max_hours = max(c.billable_hours for c in shown)
    max_money = max(getattr(c, field) for c in shown for _, _, field in series)
    title = f"Billable hours, billed and paid per client ({currency})"
    money_title = "Billed, paid, not issued" if len(series) > 2 else "Billed and paid"
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text x="{hours_x}" y="16" class="panel">Billable hours (h)</text>',
        f'<text x="{money_x}" y="16" class="panel">{money_title} ({escape(currency)})</text>',
    ]
    legend_x = money_x
    for what, colour, _ in series:
        out.append(f'<rect x="{legend_x}" y="26" width="10" height="10" fill="{colour}"/>'
                   f'<text x="{legend_x + 14}" y="35" class="legend">{what}</text>')  # fmt: skip
        legend_x += 30 + 7 * len(what)
    for axis_x, axis_w in ((hours_x, hours_w), (money_x, money_w)):
        out.append(f'<line x1="{axis_x}" y1="{top - 4}" x2="{axis_x}" y2="{height - 20}" class="axis" '
                   'stroke="#1f2328"/>')  # fmt: skip
        out.append(f'<line x1="{axis_x + axis_w}" y1="{top - 4}" x2="{axis_x + axis_w}" y2="{height - 20}" '
                   'class="grid" stroke="#d1d9e0" stroke-dasharray="3 3"/>')  # fmt: skip
    for axis_x in (hours_x, money_x):
        out.append(f'<text x="{axis_x}" y="{height - 6}" class="tick">0</text>')
    out.append(f'<text x="{hours_x + hours_w}" y="{height - 6}" class="tick" text-anchor="end">'
               f"{escape(hours_text(max_hours))} h</text>")  # fmt: skip
    out.append(f'<text x="{money_x + money_w}" y="{height - 6}" class="tick" text-anchor="end">'
               f"{escape(money_text(max_money, exponent))}</text>")  # fmt: skip
    for i, c in enumerate(shown):
        y = top + i * row_h
        mid = y + row_h // 2
        name = c.client_name or c.client_key
        out.append(f'<g><title>{escape(name)} ({escape(c.client_key)})</title>'
                   f'<text x="{label_w}" y="{mid + 1}" class="label" text-anchor="end">{escape(_label(name))}</text>'
                   "</g>")  # fmt: skip
        hw = _scale(c.billable_hours, max_hours, hours_w)
        out.append(f'<rect x="{hours_x}" y="{mid - 10}" width="{_n(hw)}" height="14" fill="{HOURS_COLOUR}">'
                   f"<title>{escape(hours_text(c.billable_hours))} billable hours</title></rect>")  # fmt: skip
        out.append(f'<text x="{_n(hours_x + hw + 4)}" y="{mid + 1}" class="value">'
                   f"{escape(hours_text(c.billable_hours))}</text>")  # fmt: skip
        for j, (what, colour, field) in enumerate(series):
            amount = getattr(c, field)
            bw = _scale(amount, max_money, money_w)
            by = y + 3 + j * 13
            text = money_text(amount, c.exponent)
            out.append(f'<rect x="{money_x}" y="{by}" width="{_n(bw)}" height="11" fill="{colour}">'
                       f"<title>{what}: {escape(text)} {escape(currency)}</title></rect>")  # fmt: skip
            out.append(f'<text x="{_n(money_x + bw + 4)}" y="{by + 10}" class="value">{escape(text)}</text>')
    out.append("</svg>")
    if len(rows) > len(shown):
        out.append(f'<p class="note">The {len(shown)} clients with the largest amounts are drawn; '
                   f"{len(rows) - len(shown)} more are in the table below.</p>")  # fmt: skip
    return "\n".join(out)


def recon_status_grid(history: Sequence[dict]) -> str:
    """Reconciliation status of recent periods: one column per period (oldest left), one row per check, each
    cell the verdict of that period's latest finished run. A period without a run is an empty cell."""
    if not history:
        return ""
    checks = sorted({name for h in history for name in h["checks"]})
    rows = checks or ["(run)"]
    label_w, cell_w, cell_h, top = 210, 70, 24, 40
    width = label_w + cell_w * len(history) + 10
    height = top + cell_h * len(rows) + 40
    title = "Reconciliation status over recent periods"
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for j, h in enumerate(history):
        x = label_w + j * cell_w
        out.append(f'<text x="{x + cell_w // 2}" y="{top - 10}" class="label" text-anchor="middle">'
                   f"{escape(h['period'])}</text>")  # fmt: skip
    for i, check in enumerate(rows):
        y = top + i * cell_h
        out.append(f'<text x="{label_w - 8}" y="{y + 16}" class="label" text-anchor="end">{escape(check)}</text>')
        for j, h in enumerate(history):
            x = label_w + j * cell_w
            status = h["checks"].get(check) if checks else h["status"]
            if h["run_id"] is None:
                status = None
            fill, glyph, label = STATUS_STYLE.get(status, ("#bab0ac", "?", str(status)))
            tip = f"{h['period']} · {check}: {label}" + (f" (run {h['run_id']})" if h["run_id"] else "")
            out.append(f'<g><title>{escape(tip)}</title><rect x="{x + 2}" y="{y + 2}" width="{cell_w - 4}" '
                       f'height="{cell_h - 4}" fill="{fill}" stroke="#8c959f" stroke-width="0.5" class="cell"/>'
                       f'<text x="{x + cell_w // 2}" y="{y + 16}" class="glyph" fill="#ffffff" text-anchor="middle">'
                       f"{glyph}</text>"
                       "</g>")  # fmt: skip
    legend_y = top + cell_h * len(rows) + 22
    x = label_w
    for status in ("passed", "failed", "error", "not_applicable", None):
        fill, glyph, label = STATUS_STYLE[status]
        out.append(f'<rect x="{x}" y="{legend_y - 10}" width="12" height="12" fill="{fill}" stroke="#8c959f" '
                   'stroke-width="0.5" class="cell"/>'
                   f'<text x="{x + 16}" y="{legend_y}" class="legend">{escape(label)}</text>')  # fmt: skip
        x += 30 + 7 * len(label)
    out.append("</svg>")
    return "\n".join(out)


def cash_waterfall(cash: CashCurrency) -> str:
    """One settlement currency's month in Stripe's balance as a waterfall, left to right: the opening balance, what
    came in (gross), what went out (fees, refunds, disputes, paid out to the bank), other movements either way,
    and the closing balance. Each step floats from where the previous one ended, so the bars read as the tie-out
    ``opening + net - paid out = closing``; the ledger's Stripe balance is marked beside the closing bar."""
    steps: list[tuple[str, int, str]] = [
        ("opening", cash.opening_minor, "balance"),
        ("gross collected", cash.gross_minor, "in"),
        ("fees", -cash.fees_minor, "out"),
        ("refunds", -cash.refunds_minor, "out"),
        ("disputes", -cash.disputes_minor, "out"),
        ("other", cash.other_minor, "in" if cash.other_minor >= 0 else "out"),
        ("paid out", -cash.paid_out_minor, "out"),
        ("closing", cash.closing_minor, "balance"),
    ]
    levels, running = [], 0
    for label, amount, kind in steps:
        start, end = (0, amount) if kind == "balance" else (running, running + amount)
        running = end
        levels.append((label, amount, kind, start, end))
    top = max([0, cash.ledger_closing_minor, *(max(a, b) for *_, a, b in levels)])
    bottom = min([0, cash.ledger_closing_minor, *(min(a, b) for *_, a, b in levels)])
    span = (top - bottom) or 1
    plot_h, top_y, left, bar_w, gap = 180, 34, 60, 70, 18
    width = left + len(levels) * (bar_w + gap) + 20
    height = top_y + plot_h + 46

    def y(value: int) -> Decimal:
        return top_y + Decimal(top - value) * plot_h / span

    title = f"Stripe balance in {cash.currency}: opening to closing"
    colours = {"in": IN_COLOUR, "out": OUT_COLOUR, "balance": BALANCE_COLOUR}
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text x="{left}" y="16" class="panel">{escape(title)}</text>',
        f'<line x1="{left - 6}" y1="{_n(y(0))}" x2="{width - 10}" y2="{_n(y(0))}" class="axis" stroke="#1f2328"/>',
    ]
    for i, (label, amount, kind, start, end) in enumerate(levels):
        x = left + i * (bar_w + gap)
        high, low = y(max(start, end)), y(min(start, end))
        text = money_text(amount, cash.exponent)
        out.append(f'<g><title>{escape(label)}: {escape(text)} {escape(cash.currency)}</title>'
                   f'<rect x="{x}" y="{_n(high)}" width="{bar_w}" height="{_n(max(low - high, Decimal(1)))}" '
                   f'fill="{colours[kind]}"/></g>')  # fmt: skip
        out.append(f'<text x="{x + bar_w // 2}" y="{_n(high - 4)}" class="value" text-anchor="middle">'
                   f"{escape(text)}</text>")  # fmt: skip
        out.append(f'<text x="{x + bar_w // 2}" y="{top_y + plot_h + 18}" class="label" text-anchor="middle">'
                   f"{escape(label)}</text>")  # fmt: skip
    x = left + (len(levels) - 1) * (bar_w + gap)
    ledger_y = _n(y(cash.ledger_closing_minor))
    ledger = money_text(cash.ledger_closing_minor, cash.exponent)
    out.append(f'<g><title>ledger Stripe balance: {escape(ledger)} {escape(cash.currency)}</title>'
               f'<line x1="{x - 6}" y1="{ledger_y}" x2="{x + bar_w + 6}" y2="{ledger_y}" stroke="#1f2328" '
               'stroke-width="2" stroke-dasharray="4 2" class="ledger"/></g>')  # fmt: skip
    out.append(f'<text x="{left}" y="{height - 6}" class="legend">dashed: the ledger\'s Stripe balance '
               f"({escape(ledger)})</text>")  # fmt: skip
    out.append("</svg>")
    return "\n".join(out)
