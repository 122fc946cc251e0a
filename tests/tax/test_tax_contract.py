"""The public tax contract (migration 0042) the accounting push reads: closeout.invoices.tax_minor and
tax_inclusive, and closeout.invoice_line_taxes with its exact columns, readable by the pipeline and
finance roles; the line tax function rounds once, half-up, in the minor unit."""

from __future__ import annotations

import pytest
from closeout.warehouse.db import connect

CONTRACT = ["invoice_id", "line_no", "taxable_minor", "tax_minor", "rate_percent", "inclusive", "exempt",
            "quickbooks_tax_code", "xero_tax_type"]  # fmt: skip


def test_contract_columns_and_grants(warehouse) -> None:
    columns = [r[0] for r in warehouse.rows(
        """SELECT column_name FROM information_schema.columns
           WHERE table_schema = 'closeout' AND table_name = 'invoice_line_taxes' ORDER BY ordinal_position""")]
    assert columns[: len(CONTRACT)] == CONTRACT
    types = dict(warehouse.rows(
        """SELECT column_name, data_type FROM information_schema.columns
           WHERE table_schema = 'closeout' AND table_name IN ('invoice_line_taxes')"""))  # fmt: skip
    assert types["taxable_minor"] == "bigint" and types["tax_minor"] == "bigint"
    assert types["rate_percent"] == "numeric" and types["inclusive"] == "boolean"
    invoice_columns = dict(warehouse.rows(
        """SELECT column_name, data_type FROM information_schema.columns
           WHERE table_schema = 'closeout' AND table_name = 'invoices'"""))  # fmt: skip
    assert invoice_columns["tax_minor"] == "bigint" and invoice_columns["tax_inclusive"] == "boolean"
    for role in ("closeout_pipeline", "closeout_finance"):
        assert warehouse.scalar("SELECT has_table_privilege(%s, 'closeout.invoice_line_taxes', 'SELECT')", (role,))
        assert warehouse.scalar("SELECT has_table_privilege(%s, 'closeout.invoices', 'SELECT')", (role,))


@pytest.mark.parametrize(
    ("amount", "rate", "inclusive", "tax"),
    [
        (1000, "20", False, 200),
        (1000, "20", True, 167),      # 1000 x 20/120 = 166.67
        (25, "10", False, 3),         # 2.5 rounds half-up
        (-25, "10", False, -3),       # a credit's tax is the exact negative
        (1005, "17.5", False, 176),   # 175.875
        (1200, "20", True, 200),
        (7, "8.25", True, 1),         # 0.5335...
        (999, "0", False, 0),
    ],
)
def test_line_tax_rounds_once_half_up(warehouse, amount: int, rate: str, inclusive: bool, tax: int) -> None:
    with connect() as conn:
        (got,) = conn.execute("SELECT closeout_data.line_tax_minor(%s, %s::numeric, %s)",
                              (amount, rate, inclusive)).fetchone()  # fmt: skip
    assert got == tax
