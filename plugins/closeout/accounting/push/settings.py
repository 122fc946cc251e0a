"""How the books are set up for the push: the connection's extra ``push`` (a JSON object), read once per run.

Why a connection extra: the mapping belongs to the company it describes (one QuickBooks realm / Xero tenant per
connection), and the platform team already keeps that connection. Every key is optional:

* ``home_currency``: the company's home (QuickBooks) / base (Xero) currency, default ``USD``;
* ``accounts``: ledger role or ledger account code -> the account there (QuickBooks account Id, Xero account
  code). When given, every role a record uses must be mapped, or the record is held (``account_mapping``); when
  absent, the chart's own codes are sent (a chart set up with the same codes);
* ``tax_code`` / ``tax_codes``: the sales tax code of invoice lines (QuickBooks ``TaxCodeRef``, Xero ``TaxType``),
  default and per client key; none sends no code (US automated sales tax, Xero's account default);
* ``item_id``: the QuickBooks product/service of invoice lines (default ``1``);
* ``key_lifetime_seconds``: how long the vendor keeps an idempotency key (default 24 h); an unanswered batch older
  than that is not resent but its objects are looked up by reference first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_KEY_LIFETIME = 24 * 3600.0


@dataclass(frozen=True)
class PushSettings:
    home_currency: str = "USD"
    accounts: Mapping[str, str] = field(default_factory=dict)
    tax_code: str | None = None
    tax_codes: Mapping[str, str] = field(default_factory=dict)
    item_id: str = "1"
    key_lifetime_seconds: float = DEFAULT_KEY_LIFETIME

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any]) -> PushSettings:
        push = extra.get("push") or {}
        if not isinstance(push, Mapping):
            raise ValueError("the connection extra 'push' must be a JSON object")
        return cls(
            home_currency=str(push.get("home_currency") or "USD").upper(),
            accounts={str(k): str(v) for k, v in (push.get("accounts") or {}).items()},
            tax_code=str(push["tax_code"]) if push.get("tax_code") else None,
            tax_codes={str(k): str(v) for k, v in (push.get("tax_codes") or {}).items()},
            item_id=str(push.get("item_id") or "1"),
            key_lifetime_seconds=float(push.get("key_lifetime_seconds", DEFAULT_KEY_LIFETIME)),
        )

    def account(self, role: str, code: str) -> str | None:
        """The account there for a ledger line (by role, then by ledger code); None when a mapping is configured
        and lacks it (the record is held rather than booked to a guess)."""
        if not self.accounts:
            return code
        return self.accounts.get(role) or self.accounts.get(code)

    def tax_code_for(self, client_key: str | None) -> str | None:
        return self.tax_codes.get(client_key or "") or self.tax_code
