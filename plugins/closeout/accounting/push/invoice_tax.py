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

from dataclasses import dataclass, replace
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
            raise TaxHold("tax_code", f"{_what(record)} {record.ref}: client {record.client_key} is taxed at "
                                      f"{rate.normalize()}% ({how}) but has no {label}; set {config} in the "
                                      f"client's billing config (line {row['line_no']})")  # fmt: skip
        taxable = int(row["taxable_minor"]) if row.get("taxable_minor") is not None else amount - (tax if inclusive
                                                                                                    else 0)
        lines.append(TaxedLine(row, amount, taxable, tax, code or fallback_code))
    tax_minor = int(record.row.get("tax_minor") or 0)
    result = InvoiceTax(taxed, inclusive, tax_minor, tuple(lines))
    line_tax = sum(line.tax_minor for line in lines)
    if line_tax != tax_minor:
        raise TaxHold("refused", f"{_what(record)} {record.ref}: its lines' tax sums to {line_tax}, "
                                 f"its tax is {tax_minor}")  # fmt: skip
    if result.net_minor + tax_minor != record.total_minor:
        raise TaxHold("refused", f"{_what(record)} {record.ref}: its lines net of tax ({result.net_minor}) plus "
                                 f"its tax ({tax_minor}) are not its total {record.total_minor}")  # fmt: skip
    return result


def tax_mismatch(record_ref: str, expected_minor: int, their_total: Any, their_tax: Any, exponent: int,
                 what: str = "invoice") -> str | None:
    """Why the system's answer cannot stand (its total differs from closeout's), or None when it agrees; ``what``
    names the document (an invoice, a credit note)."""
    if their_total is None:
        return None
    theirs = int((Decimal(str(their_total)) * (Decimal(10) ** exponent)).to_integral_value())
    if theirs == expected_minor:
        return None
    quantum = Decimal(1).scaleb(-exponent)
    their_tax_text = Decimal(str(their_tax)).quantize(quantum) if their_tax is not None else "unknown"
    return (f"{what} {record_ref}: the accounting system computed a total of {Decimal(theirs).scaleb(-exponent)} "
            f"(tax {their_tax_text}), closeout's is {Decimal(expected_minor).scaleb(-exponent)}: its tax rate for the "
            "code differs from closeout's; fix the rate there (or the client's code) and correct the "
            f"{what}")


# -- credit notes of taxed invoices --------------------------------------------------------------------------------
# The ledger's credit note journal debits credit_notes (and reimbursable_expenses) with the net and tax_payable with
# the tax (include/sql/ledger/45_credit_notes.sql). Pushed like its invoice, the tax is the document's own, under the
# client's code, so the accounting system's tax reports fall with the correction: the tax_payable debit is not a line.
TAX_ROLE = "tax_payable"


def _what(record: Record) -> str:
    return record.kind.replace("_", " ")


def _shares(tax_minor: int, nets: list[int]) -> list[int]:
    """The tax spread over the net lines in proportion to their amounts, largest remainders first, so the shares sum
    to the tax exactly (one net line: all of it)."""
    base = sum(nets)
    if not nets:
        return []
    if base <= 0:
        return [tax_minor] + [0] * (len(nets) - 1)
    shares = [tax_minor * n // base for n in nets]
    order = sorted(range(len(nets)), key=lambda k: (-(tax_minor * nets[k] % base), k))
    for k in order[: tax_minor - sum(shares)]:
        shares[k] += 1
    return shares


def credit_note_as_invoice(record: Record) -> Record:
    """A credit note of a taxed invoice in the shape ``invoice_tax`` reads: its net lines (the journal's debits but
    tax_payable) each with its share of the credit note's tax, the invoice's rate and the client's codes, and the
    amount as the invoice's lines carry it (net when exclusive, with its tax when inclusive). The record's total (the
    journal's debits) stays: net + tax, which ``invoice_tax`` checks. An untaxed credit note is returned as it is."""
    row = record.row
    if not row.get("taxed"):
        return record
    debits = list(row.get("lines") or [])
    tax = sum(int(line["amount_minor"]) for line in debits if line.get("role") == TAX_ROLE)
    nets = [line for line in debits if line.get("role") != TAX_ROLE]
    inclusive = bool(row.get("tax_inclusive"))
    lines = []
    for line, share in zip(nets, _shares(tax, [int(line["amount_minor"]) for line in nets]), strict=True):
        net = int(line["amount_minor"])
        lines.append({**line, "amount_minor": net + share if inclusive else net, "taxable_minor": net,
                      "tax_minor": share, "rate_percent": row.get("tax_rate_percent"),
                      "quickbooks_tax_code": row.get("quickbooks_tax_code"),
                      "xero_tax_type": row.get("xero_tax_type")})  # fmt: skip
    return replace(record, row={**row, "lines": lines, "tax_minor": tax})


def xero_line_amount_types(taxes: InvoiceTax) -> str:
    """Xero's ``LineAmountTypes`` for a document with these taxes, as the invoice push chooses it."""
    if taxes.taxed and taxes.inclusive:
        return "Inclusive"
    return "Exclusive" if taxes.taxed or any(t.code for t in taxes.lines) else "NoTax"
