"""The weekly summary e-mail to finance: the figures per currency, an inline chart, the files attached (CSV) and
linked (page, JSON, CSVs: artifact links as the close report gives them).

Through the alerts' SMTP connection (``finance_smtp``: host, port, login, extra ``from``, ``to``, ``starttls``,
``ssl``, ``timeout``) and to the same recipients the finance alerts go to. The chart is a table of coloured
cells (``closeout.summary.chart.margin_mail_bars``), not SVG or an image: see that module for why.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from html import escape

from closeout.alerts.mail import FINANCE_SMTP_CONN_ID, AlertDeliveryError, _recipients, _truthy
from closeout.close.charts import hours_text, money_text
from closeout.connections import get_connection
from closeout.summary import chart
from closeout.summary.build import WeeklySummary


def subject(s: WeeklySummary, resend: bool = False) -> str:
    parts = [f"{money_text(t.margin_minor, t.exponent)} {t.currency}" for t in s.figures.totals]
    margin = f"margin {', '.join(parts)}" if parts else "no approved time"
    return f"{'Resent: ' if resend else ''}Weekly time and cost summary {s.week.label}: {margin}"


def _text(s: WeeklySummary, links: dict[str, str]) -> str:
    lines = [f"Weekly time and cost summary {s.week.label} ({s.week.start} to {s.week.end})", ""]
    for t in s.figures.totals:
        e, c = t.exponent, t.currency
        lines += [
            f"{c}: {hours_text(t.approved_hours)} approved hours ({hours_text(t.billable_hours)} billable, "
            f"{hours_text(t.nonbillable_hours)} non-billable)",
            f"  billable value {money_text(t.billable_value_minor, e)} {c}, contractor cost "
            f"{money_text(t.cost_minor, e)} {c}, non-billable expenses {money_text(t.nonbillable_expenses_minor, e)} "
            f"{c}, billable expenses {money_text(t.billable_expenses_minor, e)} {c}",
            f"  margin {money_text(t.margin_minor, e)} {c}"
            + (f" (upper bound: {hours_text(t.uncosted_hours)} h have no cost rate)" if t.uncosted_people else ""),
        ]  # fmt: skip
    if not s.figures.totals:
        lines.append("No approved time or expenses in this week.")
    uncosted = s.figures.uncosted
    if uncosted:
        lines += ["", "No cost rate (hours not costed): "
                  + ", ".join(f"{s.name(u) or u} {hours_text(h)} h" for u, h in uncosted.items())]  # fmt: skip
    if s.unapproved:
        lines += ["", f"Not yet approved: {hours_text(s.unapproved_hours)} hours (not in these figures)."]
    changed = [c for c in s.changes if c.changed]
    if changed:
        lines += ["", "Changed since last summarised: " + ", ".join(
            f"{c.week} ({sum(v['entries'] for v in c.versions.values())} entries, {len(c.figures)} figures)"
            for c in changed)]  # fmt: skip
    lines += ["", "Full summary: " + links["html"], "Summary CSV: " + links["csv"], "Payroll CSV: " + links["payroll"],
              "JSON: " + links["json"]]  # fmt: skip
    return "\n".join(lines) + "\n"


def _html(s: WeeklySummary, links: dict[str, str]) -> str:
    cell = 'style="padding:4px 8px;border-bottom:1px solid #d1d9e0;text-align:right;white-space:nowrap"'
    head = 'style="padding:4px 8px;background:#f6f8fa;text-align:right"'
    out = [f'<div style="font:14px Arial,sans-serif;color:#1f2328;max-width:680px">'
           f"<h2 style=\"font-size:18px\">Weekly time and cost summary {escape(s.week.label)}</h2>"
           f"<p>{s.week.start} to {s.week.end}</p>"]  # fmt: skip
    if s.figures.totals:
        out.append('<table cellpadding="0" cellspacing="0" border="0" style="border-collapse:collapse;font-size:13px">'
                   f'<tr><th {head}>Currency</th><th {head}>Approved h</th><th {head}>Billable value</th>'
                   f"<th {head}>Cost</th><th {head}>Non-billable expenses</th><th {head}>Margin</th></tr>")  # fmt: skip
        for t in s.figures.totals:
            e, c = t.exponent, escape(t.currency)
            note = " *" if t.uncosted_people else ""
            out.append(f"<tr><td {cell}>{c}</td><td {cell}>{hours_text(t.approved_hours)}</td>"
                       f"<td {cell}>{money_text(t.billable_value_minor, e)} {c}</td>"
                       f"<td {cell}>{money_text(t.cost_minor, e)} {c}</td>"
                       f"<td {cell}>{money_text(t.nonbillable_expenses_minor, e)} {c}</td>"
                       f"<td {cell}><strong>{money_text(t.margin_minor, e)} {c}</strong>{note}</td></tr>")  # fmt: skip
        out.append("</table>")
        if any(t.uncosted_people for t in s.figures.totals):
            people = ", ".join(escape(s.name(u) or u) for u in s.figures.uncosted)
            out.append(f"<p>* upper bound: no cost rate for {people}.</p>")
        for t in s.figures.totals:
            out.append(chart.margin_mail_bars(s.figures.margins, t.currency, s.names))
    else:
        out.append("<p>No approved time or expenses in this week.</p>")
    if s.unapproved:
        out.append(f"<p>Not yet approved: {hours_text(s.unapproved_hours)} hours (not in these figures).</p>")
    out.append(f'<p><a href="{escape(links["html"])}">Open the full summary</a> · '
               f'<a href="{escape(links["csv"])}">summary CSV</a> · '
               f'<a href="{escape(links["payroll"])}">payroll CSV</a> · '
               f'<a href="{escape(links["json"])}">JSON</a></p></div>')  # fmt: skip
    return "".join(out)


def build_message(s: WeeklySummary, links: dict[str, str], attachments: dict[str, bytes], sender: str,
                  recipients: list[str], message_id: str, resend: bool = False) -> EmailMessage:  # fmt: skip
    """Plain text and HTML alternatives, then the CSVs as attachments."""
    message = EmailMessage()
    message["Subject"] = subject(s, resend)
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = f"<{message_id}>"
    message.set_content(_text(s, links))
    message.add_alternative(_html(s, links), subtype="html")
    for name, data in attachments.items():
        message.add_attachment(data, maintype="text", subtype="csv", filename=name)
    return message


def send(s: WeeklySummary, links: dict[str, str], attachments: dict[str, bytes], message_id: str,
         resend: bool = False, conn_id: str = FINANCE_SMTP_CONN_ID) -> list[str]:  # fmt: skip
    """Deliver through ``finance_smtp``; returns the recipients the server accepted. Raises AlertDeliveryError."""
    conn = get_connection(conn_id)
    if not conn.host:
        raise AlertDeliveryError(f"connection {conn_id!r} has no host")
    sender = conn.extra.get("from") or conn.login
    if not sender:
        raise AlertDeliveryError(f"connection {conn_id!r} needs extra 'from' (the sender address)")
    recipients = _recipients(conn)
    use_ssl = _truthy(conn.extra.get("ssl", False))
    port = conn.port or (465 if use_ssl else 25)
    message = build_message(s, links, attachments, sender, recipients, message_id, resend)
    try:
        smtp_cls = smtplib.SMTP_SSL if use_ssl else smtplib.SMTP
        with smtp_cls(conn.host, port, timeout=float(conn.extra.get("timeout", 30))) as smtp:
            if not use_ssl and _truthy(conn.extra.get("starttls", False)):
                smtp.starttls(context=ssl.create_default_context())
            if conn.login and conn.password:
                smtp.login(conn.login, conn.password)
            refused = smtp.send_message(message, from_addr=sender, to_addrs=recipients)
    except smtplib.SMTPAuthenticationError as exc:
        raise AlertDeliveryError(f"SMTP server {conn.host}:{port} refused the login of {conn_id!r} ({exc.smtp_code})"
                                 ) from None  # fmt: skip
    except (smtplib.SMTPException, OSError) as exc:
        raise AlertDeliveryError(f"e-mail via {conn.host}:{port} failed: {type(exc).__name__}: {exc}") from None
    return [r for r in recipients if r not in refused]
