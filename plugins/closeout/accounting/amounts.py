"""Reading amounts and dates the way accounting systems print them, to exact integer minor units.

QuickBooks writes signed amounts as ``-2,562.45``, ``(420.81)`` or ``$(250.00)``, with thousands
separators; Xero as plain ``-150.00``. Anything else (two signs, a misplaced separator, more decimals
than the currency has) is refused with a reason, never guessed at: the row goes to quarantine.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

_SYMBOLS = "$€£¥"
_NUMBER = re.compile(r"^(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?$|^\.\d+$")


class ParseError(ValueError):
    """A cell that is not what its column promises; the message is the quarantine reason."""


def parse_decimal(text: str) -> Decimal | None:
    """A signed decimal in any of the notations above; ``None`` for an empty cell."""
    raw = text
    s = text.strip().replace("\u00a0", "").replace(" ", "")
    if not s:
        return None
    negative = False
    if s.endswith("-") and not s.startswith("-"):  # trailing minus, as some exports write credits
        negative, s = True, s[:-1]
    if s.startswith("-"):
        negative, s = True, s[1:]
    s = s.lstrip(_SYMBOLS) if s[:1] in _SYMBOLS else s
    if s.startswith("(") and s.endswith(")"):
        if negative:
            raise ParseError(f"amount {raw!r}: two minus signs")
        negative, s = True, s[1:-1].strip()
        s = s.lstrip(_SYMBOLS) if s[:1] in _SYMBOLS else s
    if s.startswith("-"):
        if negative:
            raise ParseError(f"amount {raw!r}: two minus signs")
        negative, s = True, s[1:]
    if not _NUMBER.match(s):
        raise ParseError(f"amount {raw!r}: not a number")
    try:
        value = Decimal(s.replace(",", ""))
    except InvalidOperation:
        raise ParseError(f"amount {raw!r}: not a number") from None
    return -value if negative else value


def parse_minor(text: str, exponent: int) -> int | None:
    """Exact integer minor units: ``(420.81)`` in USD is ``-42081``; ``1.234`` in USD is refused."""
    value = parse_decimal(text)
    if value is None:
        return None
    scaled = value.scaleb(exponent)
    if scaled != scaled.to_integral_value():
        raise ParseError(f"amount {text.strip()!r}: more than {exponent} decimals for this currency")
    return int(scaled)


def parse_date(text: str, fmt: str) -> date | None:
    s = text.strip()
    if not s:
        return None
    try:
        return datetime.strptime(s, fmt).date()
    except ValueError:
        raise ParseError(
            f"date {s!r}: not {fmt.replace('%m', 'MM').replace('%d', 'DD').replace('%Y', 'YYYY')}"
        ) from None
