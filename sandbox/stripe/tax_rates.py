"""Tax Rates in the Stripe sandbox: create, retrieve, update, list; the tax they put on invoice lines.

Mixed into :class:`sandbox.stripe.state.StripeState`. The rules, as Stripe documents them:

* ``POST /v1/tax_rates`` takes ``display_name``, ``percentage`` and ``inclusive`` (all required), and optional
  ``active``, ``country``, ``state``, ``jurisdiction``, ``description``, ``tax_type``, ``metadata``. Percentage
  and inclusive never change afterwards (``POST /v1/tax_rates/{id}`` updates the rest); a rate is archived by
  ``active=false``, never deleted. ``GET /v1/tax_rates`` lists them newest first (``active``, ``inclusive``,
  ``created`` filters).
* Invoice items (``tax_rates`` on ``POST /v1/invoiceitems`` and on ``add_lines`` lines) carry Tax Rate ids;
  the item shows the rates as objects. Only active rates can be attached.
* Each line's tax is computed per line and per rate, rounded once, half-up (away from zero on an exact half),
  in the currency's minor unit: exclusive, ``amount x percentage / 100`` on top of the line; inclusive, the part
  of the amount that is tax, ``amount - amount / (1 + percentage / 100)``. The line shows ``taxes`` (``amount``,
  ``tax_behavior``, ``tax_rate_details.tax_rate``, ``taxability_reason``, ``taxable_amount``, ``type``), the
  invoice ``total_taxes`` (the lines' taxes summed per rate), ``subtotal`` (the lines' amounts),
  ``subtotal_excluding_tax`` (without inclusive tax), ``total`` (subtotal plus exclusive tax),
  ``total_excluding_tax`` and ``amount_due`` accordingly (the API shape of stripe-python 16, basil onwards).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from sandbox.stripe import wire
from sandbox.stripe.wire import invalid

_HUNDRED = Decimal(100)
_TAX_TYPES = ("amusement_tax", "communications_tax", "gst", "hst", "igst", "jct", "lease_tax", "pst", "qst",
              "retail_delivery_fee", "rst", "sales_tax", "service_tax", "vat")  # fmt: skip


def line_tax(amount: int, percentage: Decimal, inclusive: bool) -> int:
    """One line's tax for one rate, in minor units: rounded once, half-up (closeout rounds the same way)."""
    value = Decimal(amount)
    exact = value * percentage / (_HUNDRED + percentage) if inclusive else value * percentage / _HUNDRED
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


class TaxRateMixin:
    """Tax Rates and the tax on invoice lines (see the module docstring)."""

    def _init_tax_rates(self) -> None:
        from sandbox.stripe.state import Collection

        self.tax_rates = Collection("tax_rate", "/v1/tax_rates")
        # the exact percentage of each rate (the API shows it as a JSON number; tax is computed from this)
        self.tax_rate_percentages: dict[str, Decimal] = {}
        self.by_kind[self.tax_rates.name] = self.tax_rates
        self.by_prefix["txr"] = self.tax_rates

    # ------------------------------------------------------------------ the API

    _TAX_RATE_FIELDS = ("display_name", "percentage", "inclusive", "active", "country", "state", "jurisdiction",
                        "description", "tax_type", "metadata")  # fmt: skip

    def api_create_tax_rate(self, params: dict[str, Any]) -> dict[str, Any]:
        wire.check_known(params, self._TAX_RATE_FIELDS)
        for name in ("display_name", "percentage", "inclusive"):
            wire.required(params, name)
        display_name = wire.param_str(params, "display_name", max_len=50) or ""
        if not display_name.strip():
            raise invalid("display_name must not be empty", param="display_name")
        percentage = _percentage(params.get("percentage"))
        inclusive = bool(wire.param_bool(params, "inclusive"))
        tax_type = wire.param_enum(params, "tax_type", _TAX_TYPES)
        country = wire.param_str(params, "country", max_len=2)
        rate = {
            "id": self.new_id("txr"), "object": "tax_rate", "active": wire.param_bool(params, "active", True),
            "country": country.upper() if country else None, "created": self.now(),
            "description": wire.param_str(params, "description") or None, "display_name": display_name,
            "effective_percentage": float(percentage), "flat_amount": None, "inclusive": inclusive,
            "jurisdiction": wire.param_str(params, "jurisdiction", max_len=50) or None, "jurisdiction_level": None,
            "livemode": False, "metadata": wire.metadata(params.get("metadata")), "percentage": float(percentage),
            "rate_type": "percentage", "state": wire.param_str(params, "state") or None, "tax_type": tax_type,
        }  # fmt: skip
        self.tax_rates.add(rate)
        self.tax_rate_percentages[rate["id"]] = percentage
        self.emit("tax_rate.created", rate)
        return rate

    def api_update_tax_rate(self, rid: str, params: dict[str, Any]) -> dict[str, Any]:
        wire.check_known(params, ("active", "country", "state", "jurisdiction", "description", "display_name",
                                  "tax_type", "metadata"))  # fmt: skip
        rate = self._get(self.tax_rates, rid)
        before = dict(rate)
        if "active" in params:
            rate["active"] = bool(wire.param_bool(params, "active"))
        for name, max_len in (("display_name", 50), ("jurisdiction", 50), ("description", 5000), ("state", 5000)):
            if name in params:
                value = wire.param_str(params, name, max_len=max_len)
                if name == "display_name" and not value:
                    raise invalid("display_name must not be empty", param="display_name")
                rate[name] = value or None
        if "country" in params:
            country = wire.param_str(params, "country", max_len=2)
            rate["country"] = country.upper() if country else None
        if "tax_type" in params:
            rate["tax_type"] = wire.param_enum(params, "tax_type", _TAX_TYPES)
        meta = wire.metadata(params.get("metadata"), rate["metadata"])
        if meta != rate["metadata"]:
            self.tax_rates.set_metadata(rate, meta)
        previous = self._changes(before, rate)
        if previous:
            self.emit("tax_rate.updated", rate, previous)
        return rate

    def api_list_tax_rates(self, params: dict[str, Any]) -> dict[str, Any]:
        wire.check_known(params, ("active", "inclusive", "created", "limit", "starting_after", "ending_before"))
        active = wire.param_bool(params, "active")
        inclusive = wire.param_bool(params, "inclusive")

        def keep(rate: dict[str, Any]) -> bool:
            return (active is None or rate["active"] == active) and (
                inclusive is None or rate["inclusive"] == inclusive
            )

        return self.tax_rates.page(params, pred=keep if active is not None or inclusive is not None else None)

    # ------------------------------------------------------------------ invoice items and lines

    def tax_rate_objects(self, value: Any, param: str) -> list[dict[str, Any]]:
        """``tax_rates`` of an item or line: ids of active Tax Rates, as the objects the item shows."""
        ids = wire.param_list({param: value}, param) or []
        rates = []
        for n, rid in enumerate(ids):
            rate = self.tax_rates.get(rid) if isinstance(rid, str) else None
            if rate is None:
                raise invalid(f"No such tax rate: '{rid}'", param=f"{param}[{n}]", code="resource_missing")
            if not rate["active"]:
                raise invalid(f"Tax rate {rid} is archived (active=false) and cannot be applied",
                              param=f"{param}[{n}]")  # fmt: skip
            rates.append(dict(rate))
        if sum(1 for r in rates if r["inclusive"]) > 1:
            raise invalid("At most one inclusive tax rate can be applied to a line", param=param)
        return rates

    def line_taxes(self, amount: int, item: dict[str, Any] | None) -> list[dict[str, Any]]:
        """The ``taxes`` of a line for ``amount`` under its item's tax rates."""
        taxes = []
        rates = (item or {}).get("tax_rates") or []
        inclusive_tax = 0
        for rate in rates:
            if rate["inclusive"]:
                inclusive_tax = line_tax(amount, self.tax_rate_percentages[rate["id"]], True)
        for rate in rates:
            percentage = self.tax_rate_percentages[rate["id"]]
            tax = inclusive_tax if rate["inclusive"] else line_tax(amount, percentage, False)
            taxes.append({
                "amount": tax, "tax_behavior": "inclusive" if rate["inclusive"] else "exclusive",
                "tax_rate_details": {"tax_rate": rate["id"]},
                "taxability_reason": "standard_rated" if percentage else "zero_rated",
                "taxable_amount": amount - inclusive_tax, "type": "tax_rate_details",
            })  # fmt: skip
        return taxes

    def apply_line_taxes(self, invoice: dict[str, Any], lines: list[dict[str, Any]]) -> int:
        """Recompute every line's ``taxes`` and the invoice's ``total_taxes`` and amounts; returns the total."""
        subtotal = exclusive = inclusive = 0
        by_rate: dict[str, dict[str, Any]] = {}
        for line in lines:
            item_id = ((line.get("parent") or {}).get("invoice_item_details") or {}).get("invoice_item")
            line["taxes"] = self.line_taxes(line["amount"], self.invoice_items.get(item_id) if item_id else None)
            subtotal += line["amount"]
            for tax in line["taxes"]:
                if tax["tax_behavior"] == "inclusive":
                    inclusive += tax["amount"]
                else:
                    exclusive += tax["amount"]
                rid = tax["tax_rate_details"]["tax_rate"]
                total = by_rate.setdefault(rid, {**tax, "amount": 0, "taxable_amount": 0})
                total["amount"] += tax["amount"]
                total["taxable_amount"] += tax["taxable_amount"]
        invoice["total_taxes"] = list(by_rate.values())
        invoice["subtotal"] = subtotal
        invoice["subtotal_excluding_tax"] = subtotal - inclusive
        invoice["total"] = subtotal + exclusive
        invoice["total_excluding_tax"] = subtotal - inclusive
        return invoice["total"]

    def tamper_tax_rate(self, rid: str, percentage: Decimal) -> None:
        """Change a rate's percentage behind everyone's back (Stripe never allows it; no event). For tests of
        the reconciliation: drafts recompute with it, finalized invoices keep the tax they had."""
        self._get(self.tax_rates, rid)
        self.tax_rate_percentages[rid] = Decimal(percentage)
        self.version += 1


def _percentage(raw: Any) -> Decimal:
    if isinstance(raw, bool) or raw is None or raw == "":
        raise invalid("Missing required param: percentage.", param="percentage", code="parameter_missing")
    try:
        value = Decimal(str(raw))
    except InvalidOperation as exc:
        raise invalid(f"Invalid decimal: {raw}", param="percentage") from exc
    if not value.is_finite() or value < 0 or value > _HUNDRED:
        raise invalid("percentage must be between 0 and 100", param="percentage")
    if value.as_tuple().exponent < -4:  # type: ignore[operator]
        raise invalid("percentage can have at most 4 decimal places", param="percentage")
    return value
