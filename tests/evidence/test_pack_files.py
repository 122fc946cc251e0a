"""How one table becomes a pack's JSON and CSV: exact numbers (never through a float), formula cells neutralised,
credential-shaped text masked; and the period names a pack accepts."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from closeout.evidence.bundle import Table, table_csv, table_json
from closeout.evidence.packs import EvidenceError, period_bounds

BIG = 2**62 + 1  # a float cannot hold it: 4611686018427387905 would print as ...904 or 4.6e18


def _table() -> Table:
    return Table("t", "test rows", ["amount_minor", "rate", "note", "when", "day", "flag", "detail", "empty"], [
        (BIG, Decimal("95.125"), "=1+2", datetime(2026, 11, 30, 23, 59, tzinfo=UTC), date(2026, 11, 1), True,
         {"key": "sk_test_abcdef123456", "n": 1}, None),
        (-5000, Decimal("-0.50"), "@SUM(A1) token=hunter2secret", None, None, False, [1, 2], ""),
    ])  # fmt: skip


def test_csv_keeps_numbers_exact_and_neutralises_formulas() -> None:
    rows = list(csv.reader(io.StringIO(table_csv(_table()).decode("utf-8"), newline="")))
    assert rows[0][0] == "amount_minor"
    first, second = rows[1], rows[2]
    assert first[0] == str(BIG) and first[1] == "95.125" and second[0] == "-5000" and second[1] == "-0.50"
    assert first[2] == "'=1+2" and second[2].startswith("'@SUM(A1)")
    assert first[3] == "2026-11-30T23:59:00+00:00" and first[4] == "2026-11-01" and first[5] == "true"
    assert "sk_test_abcdef123456" not in first[6] and json.loads(first[6])["n"] == 1
    assert "hunter2secret" not in second[2] and first[7] == "" and second[7] == ""


def test_json_keeps_types_and_decimals_as_strings() -> None:
    first, second = json.loads(table_json(_table()))
    assert first["amount_minor"] == BIG and first["rate"] == "95.125" and second["rate"] == "-0.50"
    assert first["note"] == "=1+2"  # JSON is not a spreadsheet: the text as typed
    assert first["flag"] is True and first["empty"] is None and second["detail"] == [1, 2]
    assert "sk_test_abcdef123456" not in json.dumps(first) and "hunter2secret" not in second["note"]


def test_period_names() -> None:
    assert period_bounds("2026-12") == (date(2026, 12, 1), date(2027, 1, 1))
    for bad in ("2026-13", "2026-1", "26-11", "", "2026-11-01"):
        with pytest.raises(EvidenceError, match="expected YYYY-MM"):
            period_bounds(bad)
