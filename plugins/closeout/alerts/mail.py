"""Send a finance alert as a plain-text e-mail through the ``finance_smtp`` connection (smtplib).

Connection: host, port, optional login/password; extra ``from``, ``to`` (a list or a comma-separated
string), ``starttls`` (bool), optional ``ssl`` (implicit TLS, port 465) and ``timeout`` seconds.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from closeout import faults
from closeout.alerts.compose import FinanceAlert
from closeout.connections import ConnectionInfo, get_connection

FINANCE_SMTP_CONN_ID = "finance_smtp"


class AlertDeliveryError(RuntimeError):
    """An alert could not be delivered; the message names the channel, never a credential."""


def _recipients(conn: ConnectionInfo) -> list[str]:
    to = conn.extra.get("to") or []
    if isinstance(to, str):
        to = [part.strip() for part in to.split(",")]
    recipients = [str(addr).strip() for addr in to if str(addr).strip()]
    if not recipients:
        raise AlertDeliveryError(
            f"connection {conn.conn_id!r} has no recipients: set extra 'to' to a list of addresses"
        )
    return recipients


def _truthy(value: object) -> bool:
    return value is True or str(value).strip().lower() in ("1", "true", "yes", "on")


def build_message(alert: FinanceAlert, sender: str, recipients: list[str], message_id: str | None = None
                  ) -> EmailMessage:  # fmt: skip
    """The e-mail; ``message_id`` (without the angle brackets) makes a resent alert recognisably the same one."""
    message = EmailMessage()
    message["Subject"] = alert.subject
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = f"<{message_id}>" if message_id else make_msgid(domain="closeout")
    message.set_content(alert.text)  # text/plain, utf-8
    return message


def send_email(alert: FinanceAlert, conn_id: str = FINANCE_SMTP_CONN_ID, *, message_id: str | None = None) -> list[str]:
    """Deliver the alert; return the recipients the server accepted. Raises AlertDeliveryError.

    ``message_id`` is the delivery's identity (``closeout.alerts.notify.delivery_id``): a worker that dies after the
    server accepted the mail and before the delivery is recorded sends it again on the retry, under the same
    Message-ID, so mail systems that drop a Message-ID they already hold (and people) see one alert."""
    conn = get_connection(conn_id)
    if not conn.host:
        raise AlertDeliveryError(f"connection {conn_id!r} has no host")
    sender = conn.extra.get("from") or conn.login
    if not sender:
        raise AlertDeliveryError(f"connection {conn_id!r} needs extra 'from' (the sender address)")
    recipients = _recipients(conn)
    timeout = float(conn.extra.get("timeout", 30))
    use_ssl = _truthy(conn.extra.get("ssl", False))
    port = conn.port or (465 if use_ssl else 25)
    message = build_message(alert, sender, recipients, message_id)
    faults.point("alert.email.before_send")
    try:
        smtp_cls = smtplib.SMTP_SSL if use_ssl else smtplib.SMTP
        with smtp_cls(conn.host, port, timeout=timeout) as smtp:
            if not use_ssl and _truthy(conn.extra.get("starttls", False)):
                smtp.starttls(context=ssl.create_default_context())
            if conn.login and conn.password:
                smtp.login(conn.login, conn.password)
            refused = smtp.send_message(message, from_addr=sender, to_addrs=recipients)
    except smtplib.SMTPAuthenticationError as exc:
        raise AlertDeliveryError(
            f"SMTP server {conn.host}:{port} refused the login of connection {conn_id!r} ({exc.smtp_code})"
        ) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise AlertDeliveryError(f"e-mail via {conn.host}:{port} failed: {type(exc).__name__}: {exc}") from None
    faults.point("alert.email.after_send")
    return [r for r in recipients if r not in refused]
