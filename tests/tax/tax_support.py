"""Shared by the tax tests: taxed billing configurations and the tax invariant read from the contract views
(each line's tax rounded once, half-up, in the minor unit; the invoice's tax their sum; its total the lines
plus an exclusive rate's tax), computed here independently of closeout's SQL."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import psycopg

VAT20 = {"rate_percent": "20", "inclusive": False, "name": "VAT", "jurisdiction": "GB",
         "codes": {"quickbooks": "TAX20", "xero": "OUTPUT2"}}  # fmt: skip
EXEMPT = {"exempt": True, "codes": {"quickbooks": "NON", "xero": "EXEMPTOUTPUT"}}


def line_tax(amount_minor: int, rate_percent: Decimal, inclusive: bool) -> int:
    """One line's tax, as finance would work it out by hand."""
    amount = Decimal(amount_minor)
    exact = amount - amount / (1 + rate_percent / 100) if inclusive else amount * rate_percent / 100
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def client(key: str, currency: str, tax: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    return {"client_key": key, "currency": currency, "grouping": "entry", **({"tax": tax} if tax else {}), **extra}


def check_tax_invariant(conn: psycopg.Connection) -> None:
    """Every invoice: tax = sum of its lines' taxes, total = lines + exclusive tax; untaxed: tax 0, no tax rows."""
    rows = conn.execute(
        """SELECT i.invoice_id, i.total_minor, i.tax_minor, i.tax_rate_percent, i.tax_inclusive, i.tax_exempt,
                  coalesce(array_agg(l.amount_minor ORDER BY l.line_no) FILTER (WHERE l.line_no IS NOT NULL), '{}')
           FROM closeout.invoices i LEFT JOIN closeout.invoice_lines l USING (invoice_id)
           GROUP BY 1, 2, 3, 4, 5, 6"""
    ).fetchall()
    for invoice_id, total, tax, rate, inclusive, exempt, amounts in rows:
        taxes = [line_tax(a, rate, inclusive) if rate is not None else 0 for a in amounts]
        assert tax == sum(taxes), f"{invoice_id}: tax {tax} != sum of line taxes {taxes}"
        assert total == sum(amounts) + (0 if inclusive else tax), f"{invoice_id}: total {total}"
        view = conn.execute(
            "SELECT tax_minor, taxable_minor FROM closeout.invoice_line_taxes WHERE invoice_id = %s ORDER BY line_no",
            (invoice_id,),
        ).fetchall()
        if rate is None and not exempt:
            assert view == [], f"{invoice_id}: untaxed invoice has tax rows"
        else:
            assert [v[0] for v in view] == taxes
            assert [v[1] for v in view] == [a - (t if inclusive else 0) for a, t in zip(amounts, taxes, strict=True)]
    versions = conn.execute(
        """SELECT v.invoice_id, v.version, v.total_minor, v.tax_minor, i.tax_inclusive,
                  (SELECT coalesce(sum(l.amount_minor), 0) FROM closeout.invoice_line_versions l
                   WHERE l.invoice_id = v.invoice_id AND l.version = v.version)
           FROM closeout.invoice_versions v JOIN closeout.invoices i USING (invoice_id)
           WHERE v.version = i.version"""
    ).fetchall()
    for invoice_id, version, total, tax, inclusive, lines in versions:
        assert total == lines + (0 if inclusive else tax), f"{invoice_id} v{version}: recorded total {total}"
