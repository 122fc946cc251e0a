"""Hosted invoice page links, with the lifetimes Stripe documents (docs.stripe.com/invoicing/hosted-invoice-page).

* A finalized invoice gets a URL with a long random token. It expires 30 days after the due date (30 days
  after finalization without one), never more than 120 days after finalization.
* Any URL the API hands out is valid for at least 10 days from then, even after that expiry: an API read of an
  invoice whose link has less than 10 days left gets a new link (new token), and the old one still dies when
  it was going to.
* ``POST /v1/invoices/{id}/send`` e-mails the customer the invoice with a fresh link (in test mode nothing is
  e-mailed; the link and the ``invoice.sent`` event are all there is): the sandbox remembers which links were
  "sent", so the expired page can offer the recovery flow Stripe offers to invoices that were sent.
* An expired link redirects to a page that says so (HTTP 410 in the sandbox): the customer holds a dead link.

The due date of an open invoice cannot change (the API edits ``due_date`` on drafts only), so nothing but a
new link (an API read, or a send) gets a customer past an expired one.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

DAY = 86_400
DAYS_AFTER_DUE = 30
MAX_DAYS = 120
SHOWN_VALID_DAYS = 10


@dataclass(frozen=True)
class HostedLink:
    """One URL of one invoice's hosted page: until when it loads, and how it came about."""

    invoice_id: str
    token: str
    issued_at: int
    expires_at: int
    via: str  # finalize | api_read | send


class HostedLinks:
    """Every hosted page link the sandbox issued, by token; the current one per invoice."""

    def __init__(self) -> None:
        self.by_token: dict[str, HostedLink] = {}
        self.current: dict[str, str] = {}  # in_ -> token of the link the API shows now
        self.sent: dict[str, list[str]] = {}  # in_ -> URLs e-mailed to the customer (send), oldest first

    @staticmethod
    def natural_expiry(invoice: dict[str, Any]) -> int:
        """30 days after the due date (or finalization), never more than 120 days after finalization."""
        finalized = int(invoice["status_transitions"]["finalized_at"])
        due = invoice.get("due_date")
        return min((int(due) if due is not None else finalized) + DAYS_AFTER_DUE * DAY, finalized + MAX_DAYS * DAY)

    def issue(self, invoice: dict[str, Any], base_url: str, now: int, via: str) -> HostedLink:
        """A new link (new token) for ``invoice``, valid for at least 10 days; it becomes the invoice's URL."""
        token = f"test_{secrets.token_urlsafe(24)}"
        link = HostedLink(invoice["id"], token, now, max(self.natural_expiry(invoice), now + SHOWN_VALID_DAYS * DAY),
                          via)  # fmt: skip
        self.by_token[token] = link
        self.current[invoice["id"]] = token
        invoice["hosted_invoice_url"] = f"{base_url}/i/{invoice['id']}/{token}"
        invoice["invoice_pdf"] = f"{base_url}/i/{invoice['id']}/{token}/pdf"
        return link

    def keep_live(self, invoice: dict[str, Any], base_url: str, now: int) -> None:
        """What the API shows is valid for 10 more days at least: a link closer to its end is replaced."""
        token = self.current.get(invoice["id"])
        if (
            token is not None
            and invoice["status"] != "draft"
            and self.by_token[token].expires_at < now + SHOWN_VALID_DAYS * DAY
        ):
            self.issue(invoice, base_url, now, "api_read")

    def send(self, invoice: dict[str, Any], base_url: str, now: int) -> HostedLink:
        """The invoice e-mailed again: always a fresh link, recorded as one the customer now holds."""
        link = self.issue(invoice, base_url, now, "send")
        self.sent.setdefault(invoice["id"], []).append(invoice["hosted_invoice_url"])
        return link

    def find(self, invoice_id: str, token: str) -> HostedLink | None:
        link = self.by_token.get(token)
        return link if link is not None and link.invoice_id == invoice_id else None
