"""The Harvest calls the write-back makes: reads through ``HarvestHook`` (paging, pacing, retries, OAuth), writes
through a transport that never repeats a write on its own.

Harvest has no idempotency keys. A POST that timed out may have created the invoice or payment; resending it
blindly would make a second one. So writes are made once per attempt (429 is still waited out: Harvest refused
it, nothing happened), and any other failure leaves the write-back row 'sent' for the caller to resolve by looking
the object up. 401 under OAuth refreshes the access token once and repeats (the request was refused, not made).
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

from closeout.trackers.harvest.hook import HarvestHook, decode
from closeout.trackers.transport import TrackerAPIError, TrackerTransport


class HarvestWriter:
    """Reads and writes for the write-back, on one Harvest connection."""

    def __init__(self, hook: HarvestHook | None = None) -> None:
        self.hook = hook or HarvestHook()
        session = self.hook.get_conn()
        assert self.hook._transport is not None
        once = replace(self.hook.policy, max_attempts=1)
        self._writes = TrackerTransport("Harvest", session, policy=once, pacer=self.hook._transport.pacer,
                                        calls=self.hook.calls)  # fmt: skip

    @property
    def requests(self) -> int:
        return self.hook.calls.total

    # -- reads --------------------------------------------------------------------------------------------------
    def listing(self, resource: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every item of a listing, following ``links.next``."""
        items: list[dict[str, Any]] = []
        for page in self.hook.iter_pages(resource, params):
            if page.items is None:
                raise TrackerAPIError(f"Harvest {resource}: a page stayed malformed ({page.error})")
            items.extend(page.items)
        return items

    def nested_listing(self, path: str, key: str) -> list[dict[str, Any]]:
        """Every item of a listing whose envelope key differs from its path (``invoices/{id}/payments`` lists
        ``invoice_payments``), following ``links.next``."""
        url: str | None = self.hook.url(path, {"per_page": self.hook.per_page})
        items: list[dict[str, Any]] = []
        while url:
            response, _call = self.hook._request(url)
            if response.status_code == 404:
                return items
            body = decode(response.content)
            items.extend(body[key])
            url = (body.get("links") or {}).get("next")
        return items

    def get(self, path: str) -> dict[str, Any] | None:
        """One object, or None when Harvest answers 404."""
        response, _call = self.hook._request(self.hook.url(path))
        return None if response.status_code == 404 else decode(response.content)

    # -- writes (once) ------------------------------------------------------------------------------------------
    def write(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """One write; returns the decoded answer (None for an empty body or 404). Raises ``TrackerAPIError``
        (``status`` 422 for a validation refusal) on anything else."""
        url = self.hook.url(path)
        try:
            response, _call = self._writes.send(method, url, json_body=body)
        except TrackerAPIError as exc:
            if exc.status != 401 or self.hook.oauth is None:
                raise
            self.hook.reauthorize()
            response, _call = self._writes.send(method, url, json_body=body)
        if response.status_code == 404 or not response.content.strip():
            return None
        return decode(response.content)


def wire_amount(amount_minor: int, exponent: int) -> str:
    """Minor units as the decimal string Harvest reads (sent as a string: money never passes through a float)."""
    return format(Decimal(amount_minor).scaleb(-exponent), "f")


def minor(amount: Any, exponent: int) -> int:
    """A Harvest amount (decoded as Decimal) in minor units; refuses fractions of a minor unit."""
    value = Decimal(str(amount)).scaleb(exponent)
    if value != value.to_integral_value():
        raise ValueError(f"Harvest amount {amount} has a fraction of a minor unit")
    return int(value)
