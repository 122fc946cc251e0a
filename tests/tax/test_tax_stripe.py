"""Taxed invoices published through the real SDK to the Stripe sandbox, in real DAG runs: one Tax Rate per
distinct rate (made once, under a recorded idempotency key), attached to every invoice item; Stripe's total
and tax equal closeout's, per line and per invoice (exclusive, inclusive, JPY, exempt); a tax that differs in
Stripe stops the invoice before it is finalized and fails invoices_to_stripe, naming the invoice."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D
from typing import Any

import pytest
from billing_support import Books, Entry
from closeout.warehouse.db import connect
from payments_support import check_invariant_3, last_month
from tax_support import EXEMPT, VAT20, check_tax_invariant, client

pytestmark = pytest.mark.integration

INCLUSIVE_GST = {"rate_percent": "10", "inclusive": True, "name": "GST", "jurisdiction": "AU"}


def _seed(clients: list[dict[str, Any]], entries: list[Entry]) -> None:
    with connect() as conn:
        books = Books(conn)
        books.configure({"defaults": {"require_approval": False}, "clients": clients})
        books.put(*entries)
        books.draft()
        check_tax_invariant(conn)
        conn.commit()


def _entries(client_id: str, hours: list[D], rate: D, currency: str, first: int) -> list[Entry]:
    start = last_month()
    return [Entry(str(first + i), client=client_id, hours=h, rate=rate, currency=currency,
                  spent_date=start + timedelta(days=i)) for i, h in enumerate(hours)]  # fmt: skip


def test_taxed_invoices_publish_with_stripe_tax_equal_to_ours(warehouse, stripe_sandbox, run_dag) -> None:
    _seed(
        [client("harvest:vat", "USD", VAT20), client("harvest:vat2", "USD", VAT20),
         client("harvest:gst", "USD", INCLUSIVE_GST), client("harvest:jp", "JPY", {**VAT20, "rate_percent": "10"}),
         client("harvest:ex", "USD", EXEMPT), client("harvest:plain", "USD", None)],
        _entries("vat", [D("1.01"), D("0.37"), D("2.5")], D("100.125"), "USD", 1)
        + _entries("vat2", [D("1")], D("0.25"), "USD", 10)
        + _entries("gst", [D("1.5"), D("0.07")], D("99.99"), "USD", 20)
        + _entries("jp", [D("1.25"), D("1")], D("1234"), "JPY", 30)
        + _entries("ex", [D("2")], D("50"), "USD", 40)
        + _entries("plain", [D("3")], D("100"), "USD", 50),
    )  # fmt: skip
    result = run_dag("closeout_stripe_publish")
    assert result.state == "success", result
    ours = {r[0]: r[1:] for r in warehouse.rows(
        """SELECT invoice_id, client_key, total_minor, tax_minor, tax_inclusive, stripe_invoice_id, status
           FROM closeout.invoices""")}  # fmt: skip
    assert len(ours) == 6 and all(r[5] == "open" for r in ours.values())
    # one Tax Rate per distinct configuration: VAT 20 % (two clients), GST 10 % inclusive, VAT 10 %
    rates = stripe_sandbox.objects("tax_rate")
    assert sorted((r["display_name"], r["percentage"], r["inclusive"]) for r in rates) == [
        ("GST", 10.0, True), ("VAT", 10.0, False), ("VAT", 20.0, False)]
    assert warehouse.scalar("SELECT count(*) FROM closeout.stripe_tax_rates WHERE stripe_tax_rate_id IS NOT NULL") == 3
    assert warehouse.scalar("SELECT count(*) FROM closeout.stripe_outbox WHERE operation = 'tax_rate.create' "
                            "AND status = 'done'") == 3  # fmt: skip
    for invoice_id, (client_key, total, tax, inclusive, sid, _) in ours.items():
        stripe_invoice = stripe_sandbox.get(sid)
        stripe_tax = sum(t["amount"] for t in stripe_invoice["total_taxes"])
        assert (stripe_invoice["total"], stripe_tax) == (total, tax), client_key
        assert stripe_invoice["amount_due"] == total
        lines = [ln for ln in stripe_sandbox.objects("line_item") if ln["invoice"] == sid]
        ours_lines = dict(warehouse.rows(
            """SELECT l.line_no, coalesce(t.tax_minor, 0) FROM closeout.invoice_lines l
               LEFT JOIN closeout.invoice_line_taxes t USING (invoice_id, line_no) WHERE l.invoice_id = %s""",
            (invoice_id,)))  # fmt: skip
        for line in lines:
            line_no = int(line["metadata"]["closeout_line_no"])
            assert sum(t["amount"] for t in line["taxes"]) == ours_lines[line_no], (client_key, line_no)
        subtotal = sum(ln["amount"] for ln in lines)
        assert stripe_invoice["subtotal"] == subtotal
        assert stripe_invoice["total_excluding_tax"] == subtotal - (tax if inclusive else 0)
        if client_key in ("harvest:ex", "harvest:plain"):
            assert stripe_tax == 0 and all(ln["taxes"] == [] for ln in lines)
    assert ours_by_client(ours)["harvest:vat2"][1:3] == (30, 5)   # 25 cents; tax 5
    check_invariant_3(warehouse, stripe_sandbox)
    assert warehouse.rows("SELECT stripe_tax_minor FROM closeout.stripe_publications ORDER BY invoice_id") == [
        (ours[i][2],) for i in sorted(ours)]
    # a second month: the rates exist, none is made again
    before = len(stripe_sandbox.objects("tax_rate"))
    assert run_dag("closeout_stripe_publish").state == "success"
    assert len(stripe_sandbox.objects("tax_rate")) == before


def ours_by_client(ours: dict[str, tuple]) -> dict[str, tuple]:
    return {row[0]: row for row in ours.values()}


def test_a_tax_rate_timed_out_after_commit_is_made_once(warehouse, stripe_sandbox, run_dag) -> None:
    _seed([client("harvest:vat", "USD", VAT20)], _entries("vat", [D("1")], D("100"), "USD", 1))
    stripe_sandbox.inject("timeout_after_commit", path_prefix="/v1/tax_rates", delay=8)
    result = run_dag("closeout_stripe_publish")
    assert result.state == "success", result
    assert len(stripe_sandbox.objects("tax_rate")) == 1
    assert warehouse.rows("SELECT resolved_by, attempts FROM closeout.stripe_outbox "
                          "WHERE operation = 'tax_rate.create'") == [("replay", 2)]  # fmt: skip
    check_invariant_3(warehouse, stripe_sandbox)


def test_a_tax_that_differs_in_stripe_stops_the_invoice_and_fails_the_reconciliation(
    warehouse, stripe_sandbox, run_dag, tmp_path
) -> None:
    _seed([client("harvest:gst", "USD", INCLUSIVE_GST), client("harvest:ok", "USD", INCLUSIVE_GST | {"name": "GST2"})],
          _entries("gst", [D("1")], D("110"), "USD", 1) + _entries("ok", [D("1")], D("110"), "USD", 5))  # fmt: skip
    # the rate is made first (a run that stops before any lines: the stripe side then changes it)
    with connect() as conn:
        from closeout.payments.hook import StripeHook
        from closeout.payments.publish import PublishSummary, freeze_publishable, open_publications
        from closeout.payments.tax_rates import stage_tax_rates
        from payments_support import last_month as _lm

        freeze_publishable(conn, _lm() + timedelta(days=62))
        open_publications(conn, 100)
        hook = StripeHook()
        stage_tax_rates(conn, hook, PublishSummary())
        (rid,) = conn.execute("SELECT stripe_tax_rate_id FROM closeout_data.stripe_tax_rates "
                              "WHERE display_name = 'GST'").fetchone()  # fmt: skip
    stripe_sandbox.tamper_tax_rate(rid, D("12"))  # inclusive: the total stays, the tax moves
    result = run_dag("closeout_stripe_publish")
    assert result.state == "failed"
    gst = warehouse.scalar("SELECT invoice_id FROM closeout.invoices WHERE client_key = 'harvest:gst'")
    assert warehouse.rows("SELECT kind, our_total_minor, stripe_total_minor FROM closeout.payment_exceptions "
                          "WHERE invoice_id = %s", (gst,)) == [("tax_mismatch", 1000, 1179)]  # fmt: skip
    assert warehouse.scalar("SELECT status FROM closeout.invoices WHERE invoice_id = %s", (gst,)) == "publishing"
    assert warehouse.scalar("SELECT status FROM closeout.invoices WHERE client_key = 'harvest:ok'") == "open"
    assert _invoices_to_stripe(tmp_path) == [("exception:tax_mismatch", gst, 179)]


def test_a_recorded_stripe_tax_that_differs_is_a_break_naming_the_invoice(
    warehouse, stripe_sandbox, run_dag, tmp_path
) -> None:
    _seed([client("harvest:vat", "USD", VAT20), client("harvest:plain", "USD", None)],
          _entries("vat", [D("1")], D("100"), "USD", 1) + _entries("plain", [D("1")], D("100"), "USD", 5))  # fmt: skip
    assert run_dag("closeout_stripe_publish").state == "success"
    assert _invoices_to_stripe(tmp_path) == []
    vat = warehouse.scalar("SELECT invoice_id FROM closeout.invoices WHERE client_key = 'harvest:vat'")
    with connect() as conn:  # what closeout recorded of Stripe's tax, forged one cent off
        conn.execute("UPDATE closeout_data.stripe_publications SET stripe_tax_minor = stripe_tax_minor - 1 "
                     "WHERE invoice_id = %s", (vat,))  # fmt: skip
        conn.commit()
    assert _invoices_to_stripe(tmp_path) == [("tax", vat, -1)]


def _invoices_to_stripe(tmp_path) -> list[tuple]:
    """The invoices_to_stripe check as the reconciliation runs it: its failing rows (kind, item, difference)."""
    from closeout.recon.checks import CHECKS
    from closeout.recon.runner import run_reconciliation

    only = tuple(c for c in CHECKS if c.name == "invoices_to_stripe")
    with connect() as conn:
        result = run_reconciliation(conn, data_docs_dir=tmp_path / "docs", checks=only)
    check = result.by_name()["invoices_to_stripe"]
    if check.status == "passed":
        return []
    assert check.status == "failed", check
    return [(r["kind"], r["item"], r["difference_minor"]) for r in check.evidence["rows"]]


def test_a_correction_of_a_taxed_invoice_is_issued_with_its_tax_beside_an_untaxed_one(
    warehouse, stripe_sandbox
) -> None:
    """Once held for finance (credit_on_taxed_invoice); now issued with the invoice's Tax Rate on its lines
    (tests/tax/test_tax_credit_notes.py covers the figures, the journal and a Stripe tax that differs)."""
    from closeout.payments import credit_notes
    from closeout.payments import tasks as payment_tasks

    day = last_month() + timedelta(days=4)
    _seed([client("harvest:vat", "USD", VAT20), client("harvest:plain", "USD", None)],
          [Entry("1", client="vat", hours=D("10"), spent_date=day), Entry("2", client="plain", hours=D("10"),
                                                                          spent_date=day)])  # fmt: skip
    payment_tasks.publish_drafts("seed")
    vat, plain = (warehouse.scalar("SELECT stripe_invoice_id FROM closeout.invoices WHERE client_key = %s", (k,))
                  for k in ("harvest:vat", "harvest:plain"))  # fmt: skip
    with connect() as conn:  # both entries edited down after their invoices went out
        books = Books(conn)
        books.put(Entry("1", client="vat", hours=D("7.5"), spent_date=day),
                  Entry("2", client="plain", hours=D("7.5"), spent_date=day))  # fmt: skip
        books.draft()
        conn.commit()
    result = credit_notes.issue_corrections("corrections", None)
    assert result["issued"]["credit_notes_issued"] == 2 and result["issued"]["stopped"] == 0
    notes = {n["invoice"]: n for n in stripe_sandbox.objects("credit_note")}
    assert (notes[vat]["amount"], sum(t["amount"] for t in notes[vat]["total_taxes"])) == (30000, 5000)
    assert (notes[plain]["amount"], notes[plain]["total_taxes"]) == (25000, [])
    assert warehouse.scalar("SELECT count(*) FROM closeout.payment_exceptions WHERE resolved_at IS NULL") == 0
    # a rerun issues nothing new
    before = stripe_sandbox.count("credit_note")
    credit_notes.issue_corrections("corrections-again", None)
    assert stripe_sandbox.count("credit_note") == before


XERO_HEADER = ["ContactName", "InvoiceNumber", "Reference", "InvoiceDate", "DueDate", "Total", "TaxTotal",
               "InvoiceAmountPaid", "InvoiceAmountDue", "Description", "Quantity", "UnitAmount", "LineAmount",
               "Currency", "Type", "Status"]  # fmt: skip


def test_the_accounting_export_tax_is_compared_where_it_carries_it(warehouse, stripe_sandbox, run_dag,
                                                                   tmp_path) -> None:  # fmt: skip
    import csv

    from closeout.accounting.ingest import ingest_xero_invoices
    from closeout.recon.checks import CHECKS
    from closeout.recon.runner import run_reconciliation

    _seed([client("harvest:vat", "USD", VAT20), client("harvest:vat2", "USD", VAT20)],
          _entries("vat", [D("1")], D("100"), "USD", 1) + _entries("vat2", [D("2")], D("100"), "USD", 5))  # fmt: skip
    assert run_dag("closeout_stripe_publish").state == "success"
    rows = warehouse.rows("""SELECT stripe_number, invoice_id, total_minor, tax_minor, currency, period_start
                             FROM closeout.invoices ORDER BY stripe_number""")  # fmt: skip
    assert sorted((r[2], r[3]) for r in rows) == [(12000, 2000), (24000, 4000)]
    forged = rows[1][0]
    path = tmp_path / "xero.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(XERO_HEADER)
        for number, iid, total, tax, cur, day in rows:
            amount, lines = f"{D(total) / 100:.2f}", f"{D(total - tax) / 100:.2f}"
            tax_text = f"{D(tax - (100 if number == forged else 0)) / 100:.2f}"  # booked one unit of tax short
            writer.writerow(["Client", number, iid, day.strftime("%d/%m/%Y"), day.strftime("%d/%m/%Y"), amount,
                             tax_text, "0.00", amount, "Consulting", "1", lines, lines, cur, "Sales Invoice",
                             "Awaiting Payment"])  # fmt: skip
    with connect() as conn:
        ingest_xero_invoices(conn, path)
        conn.commit()
    only = tuple(c for c in CHECKS if c.name == "accounting_invoices")
    with connect() as conn:
        result = run_reconciliation(conn, data_docs_dir=tmp_path / "docs", checks=only)
    check = result.by_name()["accounting_invoices"]
    assert check.status == "failed"
    assert [(r["kind"], r["item"], r["difference_minor"]) for r in check.evidence["rows"]] == [("tax", forged, -100)]
