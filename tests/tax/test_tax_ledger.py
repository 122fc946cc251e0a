"""The invoice journal of a taxed invoice, through the real flow (drafts published by closeout to the Stripe
sandbox, Stripe's events applied, journals posted): receivable for the total, tax_payable for the tax (equal to
Stripe's total_taxes), revenue for the rest; inclusive and exclusive alike; a void reverses the tax with the
rest; an untaxed invoice's journal keeps its two lines. Every journal balances, and the receivable holds."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

import pytest
import stripe
from billing_support import Books, Entry
from closeout.ledger import accounts
from closeout.ledger import tasks as ledger_tasks
from closeout.payments import tasks as payment_tasks
from closeout.warehouse.db import connect
from payments_support import last_month
from tax_support import VAT20, client

pytestmark = pytest.mark.integration


def _follow(run: str = "tax-ledger") -> dict:
    payment_tasks.collect_events(run)
    payment_tasks.apply_events(run)
    return ledger_tasks.post_journals(run)


def _lines(warehouse, invoice_id: str, kind: str) -> tuple:
    return tuple(warehouse.rows(
        """SELECT l.role, l.debit_minor, l.credit_minor FROM closeout.ledger_lines l
           JOIN closeout.ledger_journals j USING (journal_id)
           WHERE j.invoice_id = %s AND j.kind = %s ORDER BY l.line_no""", (invoice_id, kind)))  # fmt: skip


def test_taxed_invoice_journals_credit_tax_payable_and_a_void_reverses_it(warehouse, stripe_sandbox) -> None:
    start = last_month()
    with connect() as conn:
        books = Books(conn)
        books.configure({"defaults": {"require_approval": False}, "clients": [
            client("harvest:vat", "USD", VAT20),
            client("harvest:gst", "USD", {"rate_percent": "10", "inclusive": True, "name": "GST"}),
            client("harvest:plain", "USD", None)]})  # fmt: skip
        books.put(Entry("1", client="vat", hours=D("1.01"), rate=D("100.125"), spent_date=start),
                  Entry("2", client="vat", hours=D("2"), rate=D("100"), spent_date=start + timedelta(days=1)),
                  Entry("3", client="gst", hours=D("1"), rate=D("110"), spent_date=start),
                  Entry("4", client="plain", hours=D("1"), rate=D("100"), spent_date=start))  # fmt: skip
        books.draft()
        conn.commit()
    payment_tasks.publish_drafts("publish")
    invoices = {r[0]: r[1:] for r in warehouse.rows(
        "SELECT client_key, invoice_id, stripe_invoice_id, total_minor, tax_minor FROM closeout.invoices")}  # fmt: skip
    assert _follow()["by_kind"] == {"invoice": 3}

    vat_id, vat_sid, vat_total, vat_tax = invoices["harvest:vat"]
    assert (vat_total, vat_tax) == (10113 + 20000 + 2023 + 4000, 2023 + 4000)
    assert _lines(warehouse, vat_id, "invoice") == (
        ("receivable", vat_total, 0), ("revenue", 0, vat_total - vat_tax), ("tax_payable", 0, vat_tax))
    gst_id, gst_sid, gst_total, gst_tax = invoices["harvest:gst"]
    assert (gst_total, gst_tax) == (11000, 1000)
    assert _lines(warehouse, gst_id, "invoice") == (
        ("receivable", 11000, 0), ("revenue", 0, 10000), ("tax_payable", 0, 1000))
    plain_id = invoices["harvest:plain"][0]
    assert _lines(warehouse, plain_id, "invoice") == (("receivable", 10000, 0), ("revenue", 0, 10000))
    # what is booked to tax payable is what Stripe shows as tax
    stripe_tax = sum(t["amount"] for sid in (vat_sid, gst_sid) for t in stripe_sandbox.get(sid)["total_taxes"])
    booked = warehouse.scalar("SELECT sum(credit_minor - debit_minor) FROM closeout.ledger_lines "
                              "WHERE role = 'tax_payable'")  # fmt: skip
    assert booked == stripe_tax == vat_tax + gst_tax

    client_sdk = stripe.StripeClient(stripe_sandbox.secret_key, base_addresses={"api": stripe_sandbox.url},
                                     max_network_retries=0)  # fmt: skip
    client_sdk.v1.invoices.void_invoice(gst_sid)
    stripe_sandbox.pay_invoice(vat_sid)
    _follow("tax-ledger-2")
    assert _lines(warehouse, gst_id, "void") == (
        ("receivable", 0, 11000), ("revenue", 10000, 0), ("tax_payable", 1000, 0))
    assert warehouse.scalar("SELECT sum(credit_minor - debit_minor) FROM closeout.ledger_lines "
                            "WHERE role = 'tax_payable'") == vat_tax  # fmt: skip
    assert warehouse.rows("SELECT * FROM closeout.journal_balance WHERE NOT balanced") == []
    assert warehouse.rows("SELECT * FROM closeout.receivable_by_client WHERE NOT holds") == []
    assert ledger_tasks.post_journals("again")["journals"] == 0


def test_the_shipped_chart_must_name_tax_payable() -> None:
    chart = accounts.read()
    assert chart.codes["tax_payable"] == "2200"
    raw = {"accounts": [{"code": a.code, "name": a.name, "type": a.type, "role": a.role}
                        for a in chart.accounts if a.role != "tax_payable"]}  # fmt: skip
    with pytest.raises(accounts.ChartError, match="no account for role\\(s\\) tax_payable"):
        accounts.parse(raw, origin="accounts.yaml")
