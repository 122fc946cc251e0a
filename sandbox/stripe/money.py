"""Money arithmetic of the Stripe sandbox's balance: fees and settlement-currency conversion, in ``Decimal``.

Amounts are integer minor units of their currency (``wire.ZERO_DECIMAL_CURRENCIES`` have none, the
``THREE_DECIMAL_CURRENCIES`` three, every other two). Exchange rates are quoted per MAJOR unit, as Stripe's
``exchange_rate`` is (1 EUR = 1.0835 USD -> ``Decimal("1.0835")``), so converting JPY to USD rescales.

Rounding: every conversion and every percentage fee is rounded HALF-UP (away from zero on an exact half) to the
minor unit of the target currency, once, at the end (Stripe does not publish its rule; half-up is what its
fee examples show and what finance computes by hand).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import NamedTuple

from sandbox.stripe.wire import THREE_DECIMAL_CURRENCIES, ZERO_DECIMAL_CURRENCIES

__all__ = ["FeeRule", "convert", "exponent", "fee_for", "rate_of"]

_ONE = Decimal(1)
_BASIS_POINTS = Decimal(10_000)


class FeeRule(NamedTuple):
    """A fee of ``percent_bps`` basis points of the (settled) amount plus ``fixed`` minor units."""

    percent_bps: Decimal
    fixed: int


def exponent(currency: str) -> int:
    """How many decimals the minor unit of ``currency`` has."""
    if currency in ZERO_DECIMAL_CURRENCIES:
        return 0
    if currency in THREE_DECIMAL_CURRENCIES:
        return 3
    return 2


def _round(value: Decimal) -> int:
    return int(value.quantize(_ONE, rounding=ROUND_HALF_UP))


def rate_of(value: Decimal | str | int) -> Decimal:
    """A positive exchange rate as ``Decimal`` (floats are refused: they are not exact)."""
    if isinstance(value, float):
        raise TypeError("exchange rates are Decimal or strings, never float")
    rate = Decimal(value)
    if not rate.is_finite() or rate <= 0:
        raise ValueError(f"an exchange rate must be a positive number, not {value!r}")
    return rate


def convert(amount: int, source: str, target: str, rate: Decimal) -> int:
    """``amount`` minor units of ``source`` in minor units of ``target`` at ``rate`` (per major unit)."""
    if source == target and rate == _ONE:
        return amount
    major = Decimal(amount).scaleb(-exponent(source))
    return _round((major * rate).scaleb(exponent(target)))


def fee_for(amount: int, rule: FeeRule | None) -> int:
    """The fee on a movement of ``amount`` minor units (its absolute value), or 0 without a rule."""
    if rule is None:
        return 0
    return _round(Decimal(abs(amount)) * rule.percent_bps / _BASIS_POINTS) + rule.fixed
