"""The entries check names a line that differs from its entries by its invoice and line number, as the contract
view closeout.invoice_lines numbers it (the check reads line keys and numbers only the lines that differ)."""

from __future__ import annotations

import pytest
from closeout.warehouse.db import connect
from test_recon_suites import _run, books  # noqa: F401 - books is the fixture of the suite tests

pytestmark = pytest.mark.integration


def test_a_line_entry_billed_twice_fails_its_line_and_its_entry_naming_both(warehouse, books, tmp_path) -> None:  # noqa: F811
    invoice_id, line_no, source, source_id = warehouse.rows(
        """SELECT invoice_id, line_no, source, source_id FROM closeout.invoice_line_entries
           ORDER BY line_no DESC, invoice_id LIMIT 1"""
    )[0]
    with connect() as conn:  # a second row for the same entry lands on a published invoice's line (a drafting bug)
        conn.execute(
            """INSERT INTO closeout_data.invoice_line_entries (invoice_id, line_key, source, source_id, entry_version,
                   quantity, unit_rate, amount_minor, valid_from)
               SELECT invoice_id, line_key, source, source_id, entry_version, quantity, unit_rate, 700, valid_from
               FROM closeout_data.invoice_line_entries
               WHERE invoice_id = %s AND source = %s AND source_id = %s AND valid_to IS NULL""",
            (invoice_id, source, source_id),
        )
        conn.commit()
    result = _run(tmp_path)
    assert {c.check_name for c in result.checks if c.status == "failed"} == {"entries_to_invoice_lines"}
    rows = result.by_name()["entries_to_invoice_lines"].evidence["rows"]
    assert sorted((r["kind"], r["item"], r["difference_minor"]) for r in rows) == [
        ("entry_billed", f"{source}:{source_id}", 700),
        ("line_vs_entries", f"{invoice_id}#{line_no}", -700),
    ]


def test_a_line_entry_whose_line_is_not_current_bills_nothing_as_in_the_contract_view(warehouse, books,  # noqa: F811
                                                                                      tmp_path) -> None:  # fmt: skip
    source, source_id = warehouse.rows("SELECT source, source_id FROM closeout.invoice_line_entries LIMIT 1")[0]
    with connect() as conn:  # a row under a line key no current line has: closeout.invoice_line_entries omits it
        conn.execute(
            """INSERT INTO closeout_data.invoice_line_entries (invoice_id, line_key, source, source_id, entry_version,
                   quantity, unit_rate, amount_minor, valid_from)
               SELECT invoice_id, 'no such line', source, source_id, entry_version, quantity, unit_rate, 999, valid_from
               FROM closeout_data.invoice_line_entries WHERE source = %s AND source_id = %s AND valid_to IS NULL""",
            (source, source_id),
        )
        conn.commit()
    assert warehouse.scalar("SELECT count(*) FROM closeout.invoice_line_entries WHERE amount_minor = 999") == 0
    assert result_of(_run(tmp_path)) == "passed"


def result_of(result) -> str:
    return result.by_name()["entries_to_invoice_lines"].status
