"""Xero keeps manual journals in the organisation's base currency only (issue 17 item 4): a journal closeout booked
in a foreign currency goes converted with the rate the ledger used, any rounding on a named FX rounding line so it
balances, instead of being held for a person; its link records the journal as Xero holds it (base currency)."""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP
from decimal import Decimal as D

import pytest
from closeout.accounting.push.plan import Record
from closeout.ledger import tasks as ledger_tasks
from documents_support import a_month, books_for, held, links, run_push, start, sync_customers, there

pytestmark = pytest.mark.integration


def test_a_foreign_journal_goes_converted_at_the_ledgers_rate_and_balanced(
    warehouse, stripe_sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = start("xero", monkeypatch)
    try:
        a_month(warehouse, stripe_sandbox, {"a": [D("2")]}, paid=("a",))
        sync_customers("xero")
        stripe_sandbox.set_settlement("eur", "usd", D("1.10"))  # EUR charges settle in USD at 1.10
        a_month(warehouse, stripe_sandbox, {"c": [D("5")]}, paid=("c",), currency="EUR", first_id=100)
        run_push("xero")
        assert held(warehouse, "xero") == {}  # nothing left for a person
        eur_parts = warehouse.rows(
            """SELECT e.journal_id, (SELECT count(DISTINCT a.currency) FROM closeout.ledger_lines a
                                     WHERE a.journal_id = e.journal_id)
               FROM closeout.ledger_lines e
               WHERE e.currency = 'EUR' AND e.kind NOT IN ('invoice', 'payment', 'void') GROUP BY e.journal_id""")
        assert eur_parts, "the EUR payment's FX journal has a EUR side"
        journals = links(warehouse, "xero", "journal")
        for journal_id, currencies in eur_parts:
            ref = f"{journal_id}:EUR" if currencies > 1 else journal_id
            external_id, total_minor, currency, _ = journals[ref]
            obj = there(sandbox, "journal")[external_id]
            assert obj["CurrencyCode"] == "USD" and D(str(obj.get("CurrencyRate", 1))) == 1  # the base currency
            ledger = warehouse.rows("SELECT debit_minor - credit_minor FROM closeout.ledger_lines "
                                    "WHERE journal_id = %s AND currency = 'EUR' ORDER BY line_no", (journal_id,))
            expected = [(D(n).scaleb(-2) * D("1.10")).quantize(D("0.01"), ROUND_HALF_UP) for (n,) in ledger]
            amounts = [D(str(line["LineAmount"])) for line in obj["JournalLines"]]
            assert amounts[: len(expected)] == expected  # each line at the ledger's rate
            assert sum(amounts) == 0  # balanced, with an FX rounding line when the rounding needs one
            assert all("FX rounding" in line["Description"] for line in obj["JournalLines"][len(expected):])
            assert (currency, total_minor) == ("USD", int(sum(a for a in amounts if a > 0).scaleb(2)))
    finally:
        sandbox.stop()


def test_rounding_goes_on_a_named_fx_rounding_line_and_xero_takes_it(
    warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = start("xero", monkeypatch)
    try:
        ledger_tasks.post_journals("chart")  # the chart of accounts mirrored into the warehouse (nothing to post)
        books = books_for("xero")
        # 0.05 + 0.05 EUR debited, 0.10 EUR credited, at 1.10: 0.06 + 0.06 - 0.11 leaves 0.01 to round
        lines = [{"line_no": 1, "role": "processor_fees", "account": books.chart["processor_fees"], "debit_minor": 5,
                  "credit_minor": 0},
                 {"line_no": 2, "role": "dispute_fees", "account": books.chart["dispute_fees"], "debit_minor": 5,
                  "credit_minor": 0},
                 {"line_no": 3, "role": "cash_clearing", "account": books.chart["cash_clearing"], "debit_minor": 0,
                  "credit_minor": 10}]  # fmt: skip
        record = Record(kind="journal", ref="jnl_fx_rounding:EUR", currency="EUR", total_minor=10,
                        txn_date=date.today(), exponent=2, attempts=0, client_key=None, ledger_rate=D("1.10"),
                        row={"kind": "fee", "source_ref": "txn_x", "lines": lines, "home_exponent": 2})  # fmt: skip
        body = books.shape(record)
        amounts = [D(str(x["LineAmount"])) for x in body["JournalLines"]]
        assert amounts == [D("0.06"), D("0.06"), D("-0.11"), D("-0.01")]
        rounding = body["JournalLines"][3]
        assert "FX rounding" in rounding["Description"] and rounding["AccountCode"] == books.chart["fx_gain_loss"]
        assert "CurrencyRate" not in body
        (answer,) = books.send("journal", "test:fx-rounding", [record.ref], [body])
        assert answer.external_id and not answer.reason, answer  # Xero's zero-sum rule holds
        # no ledger rate: held, never converted at a rate nobody used
        from closeout.accounting.push.books import Hold

        with pytest.raises(Hold) as hold:
            books.shape(Record(**{**record.__dict__, "ledger_rate": None}))
        assert hold.value.reason == "no_ledger_rate"
    finally:
        sandbox.stop()
