"""The tax of one invoice as the push sends it: closeout's figures, the client's code per accounting system.

Why closeout's figures and not the system's: the invoice the client received (from Stripe) carries closeout's tax,
each line's tax rounded once, half up, in the currency's minor unit (``closeout.invoice_line_taxes``, migration
0042). QuickBooks keeps the ``TxnTaxDetail.TotalTax`` it is given; Xero computes its own per line, so what Xero
answered is checked against closeout's total (``expected_total``), and a difference is held as ``tax_mismatch``.

A client with a tax configuration (a rate or an exemption) needs its tax code for the system the invoice goes to
(billing config ``tax.codes.quickbooks`` / ``tax.codes.xero``); a taxed line without one is held (``tax_code``) with
what to set, never sent with a guess. A client without a configuration keeps today's behaviour: the connection's
``push.tax_code`` / ``push.tax_codes`` (or none).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from closeout.accounting.push.plan import Record

CODE_FIELDS = {"quickbooks": ("quickbooks_tax_code", "QuickBooks tax code", "tax.codes.quickbooks"),
               "xero": ("xero_tax_type", "Xero TaxType", "tax.codes.xero")}  # fmt: skip


class TaxHold(Exception):
    """The invoice's tax cannot go as it is (``reason`` is an exception reason: ``tax_code`` or ``refused``)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class TaxedLine:
    """One line: its amount as closeout billed it, net of tax, its tax and the code there (None: no code)."""

    line: dict[str, Any]
    amount_minor: int
    taxable_minor: int
    tax_minor: int
    code: str | None


@dataclass(frozen=True)
class InvoiceTax:
    """The invoice's tax: ``taxed`` (the client has a configuration), ``inclusive`` (lines include their tax)."""

    taxed: bool
    inclusive: bool
    tax_minor: int
    lines: tuple[TaxedLine, ...]

    @property
    def net_minor(self) -> int:
        return sum(line.taxable_minor for line in self.lines)


def invoice_tax(record: Record, system: str, fallback_code: str | None) -> InvoiceTax:
    """The invoice's lines with their tax and code for ``system``; raises ``TaxHold`` when a code is missing or
    closeout's own figures do not add up (lines + exclusive tax = total)."""
    field, label, config = CODE_FIELDS[system]
    rows = list(record.row.get("lines") or [])
    taxed = bool(record.row.get("taxed"))
    inclusive = bool(record.row.get("tax_inclusive"))
    lines = []
    for row in rows:
        amount = int(row["amount_minor"])
        if not taxed:
            lines.append(TaxedLine(row, amount, amount, 0, fallback_code))
            continue
        tax = int(row.get("tax_minor") or 0)
        rate = Decimal(str(row.get("rate_percent") or 0))
        code = row.get(field) or None
        if code is None and (rate > 0 or tax != 0):
            how = "inclusive" if inclusive else "exclusive"
            raise TaxHold("tax_code", f"invoice {record.ref}: client {record.client_key} is taxed at "
                                      f"{rate.normalize()}% ({how}) but has no {label}; set {config} in the "
                                      f"client's billing config (line {row['line_no']})")  # fmt: skip
        taxable = int(row["taxable_minor"]) if row.get("taxable_minor") is not None else amount - (tax if inclusive
                                                                                                    else 0)
        lines.append(TaxedLine(row, amount, taxable, tax, code or fallback_code))
    tax_minor = int(record.row.get("tax_minor") or 0)
    result = InvoiceTax(taxed, inclusive, tax_minor, tuple(lines))
    line_tax = sum(line.tax_minor for line in lines)
    if line_tax != tax_minor:
        raise TaxHold("refused", f"invoice {record.ref}: its lines' tax sums to {line_tax}, its tax is {tax_minor}")
    if result.net_minor + tax_minor != record.total_minor:
        raise TaxHold("refused", f"invoice {record.ref}: its lines net of tax ({result.net_minor}) plus its tax "
                                 f"({tax_minor}) are not its total {record.total_minor}")  # fmt: skip
    return result


def tax_mismatch(record_ref: str, expected_minor: int, their_total: Any, their_tax: Any, exponent: int) -> str | None:
    """Why the system's answer cannot stand (its total differs from closeout's), or None when it agrees."""
    if their_total is None:
        return None
    theirs = int((Decimal(str(their_total)) * (Decimal(10) ** exponent)).to_integral_value())
    if theirs == expected_minor:
        return None
    quantum = Decimal(1).scaleb(-exponent)
    their_tax_text = Decimal(str(their_tax)).quantize(quantum) if their_tax is not None else "unknown"
    return (f"invoice {record_ref}: the accounting system computed a total of {Decimal(theirs).scaleb(-exponent)} "
            f"(tax {their_tax_text}), closeout's is {Decimal(expected_minor).scaleb(-exponent)}: its tax rate for the "
            "code differs from closeout's; fix the rate there (or the client's code) and correct the invoice")
