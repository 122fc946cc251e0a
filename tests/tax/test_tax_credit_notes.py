"""Corrections of taxed invoices credit their tax (issue 17 item 3 follow-up), through the real flow: drafts
published by closeout to the Stripe sandbox through the real SDK, paid, a time entry edited down after issue,
the correction issued as a Stripe credit note whose lines carry the invoice's Tax Rate. closeout works out the
credit's tax itself (per line, half-up, as the invoice's lines) and records it before the call; Stripe's tax
must equal it (exclusive: on top of the net; inclusive: inside it). The credit note journal debits tax_payable
with the tax and credit_notes with the net; invoices_to_stripe and the ledger checks stay green. A Stripe tax
that differs stops the correction (tax_mismatch) before anything is made, until a person resolves it. A draft
that nets negative for a taxed client credits net + tax to the customer's balance, the tax booked explicitly."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal as D
from typing import Any

import pytest
from billing_support import Books, Entry
from closeout.ledger import tasks as ledger_tasks
from closeout.payments import credit_notes, exceptions
from closeout.payments import tasks as payment_tasks
from closeout.payments.cash.tasks import sync_cash
from closeout.warehouse.db import connect
from payments_support import check_invariant_3, last_month
from tax_support import VAT20, check_tax_invariant, client, line_tax

pytestmark = pytest.mark.integration

GST_INCLUSIVE = {"rate_percent": "10", "inclusive": True, "name": "GST", "jurisdiction": "AU"}
DAY = last_month() + timedelta(days=4)


def _seed(tax: dict[str, Any], policy: str = "refund") -> tuple[str, str]:
    """One taxed client's invoice for last month (10 h + 2 h at 100.00), published by closeout: (id, Stripe id)."""
    with connect() as conn:
        books = Books(conn)
        books.configure({"defaults": {"require_approval": False},
                         "clients": [client("harvest:t", "USD", tax, credit_note_policy=policy)]})  # fmt: skip
        books.put(Entry("1", client="t", hours=D("10"), spent_date=DAY),
                  Entry("2", client="t", hours=D("2"), spent_date=DAY))  # fmt: skip
        books.draft()
        check_tax_invariant(conn)
        conn.commit()
    payment_tasks.publish_drafts("publish")
    invoice_id, sid = warehouse_row("SELECT invoice_id, stripe_invoice_id FROM closeout.invoices")
    return invoice_id, sid


def warehouse_row(sql: str, params: tuple = ()) -> tuple:
    with connect() as conn:
        row = conn.execute(sql, params).fetchone()
    assert row is not None, sql
    return row


def _edit_down(hours: D) -> None:
    """Entry 1 edited in the tracker after its invoice went out, and drafted as usual."""
    with connect() as conn:
        books = Books(conn)
        books.put(Entry("1", client="t", hours=hours, spent_date=DAY))
        books.draft()
        conn.commit()


def _follow(run: str) -> dict:
    payment_tasks.collect_events(run)
    payment_tasks.apply_events(run)
    sync_cash(run)
    return ledger_tasks.post_journals(run)


def _journal(warehouse, kind: str, source_ref: str) -> tuple:
    return tuple(warehouse.rows(
        """SELECT l.role, l.debit_minor, l.credit_minor FROM closeout.ledger_lines l
           JOIN closeout.ledger_journals j USING (journal_id)
           WHERE j.kind = %s AND j.source_ref = %s ORDER BY l.line_no""", (kind, source_ref)))  # fmt: skip


def _recon(tmp_path, names: tuple[str, ...]) -> dict[str, tuple[str, Any]]:
    """The named checks as the reconciliation runs them: name -> (status, evidence)."""
    from closeout.recon.checks import CHECKS
    from closeout.recon.runner import run_reconciliation

    only = tuple(c for c in CHECKS if c.name in names)
    with connect() as conn:
        result = run_reconciliation(conn, data_docs_dir=tmp_path / "docs", checks=only)
    return {name: (check.status, check.evidence) for name, check in result.by_name().items()}


@pytest.mark.parametrize("tax", [VAT20, GST_INCLUSIVE], ids=["exclusive", "inclusive"])
def test_a_paid_taxed_invoice_corrected_down_gets_a_credit_note_with_closeouts_tax_and_books_it(
    warehouse, stripe_sandbox, tmp_path, tax: dict[str, Any]
) -> None:
    inclusive = bool(tax["inclusive"])
    rate = D(tax["rate_percent"])
    invoice_id, sid = _seed(tax)
    stripe_sandbox.pay_invoice(sid)
    assert _follow("paid")["by_kind"].get("invoice") == 1
    assert warehouse.scalar("SELECT status FROM closeout.invoices WHERE invoice_id = %s", (invoice_id,)) == "paid"
    invoice_tax = warehouse.scalar("SELECT tax_minor FROM closeout.invoices WHERE invoice_id = %s", (invoice_id,))
    _edit_down(D("7.5"))  # 10 h -> 7.5 h: 250.00 less, net of tax when exclusive, tax inside when inclusive

    result = credit_notes.issue_corrections("corrections", None)
    assert result["issued"]["credit_notes_issued"] == 1 and result["issued"]["stopped"] == 0
    expected_tax = line_tax(25000, rate, inclusive)  # computed here, independently of closeout
    assert expected_tax == (2273 if inclusive else 5000)
    total = 25000 + (0 if inclusive else expected_tax)

    (note,) = [n for n in stripe_sandbox.objects("credit_note") if n["invoice"] == sid]
    (line,) = note["lines"]["data"]
    rate_id = warehouse.scalar("SELECT stripe_tax_rate_id FROM closeout.stripe_tax_rates")
    assert [r["id"] for r in line["tax_rates"]] == [rate_id]
    assert line["amount"] == 25000
    assert [(t["amount"], t["tax_behavior"], t["taxable_amount"]) for t in line["taxes"]] == [
        (expected_tax, "inclusive" if inclusive else "exclusive", 25000 - (expected_tax if inclusive else 0))]
    assert sum(t["amount"] for t in note["total_taxes"]) == expected_tax
    assert (note["amount"], note["total"], note["post_payment_amount"]) == (total, total, total)
    assert note["total_excluding_tax"] == 25000 - (expected_tax if inclusive else 0)
    # the refund gives the client back what they paid for the hours, tax included
    assert sum(r["amount"] for r in stripe_sandbox.objects("refund")) == total

    # closeout's expectation was on record before the call, and Stripe's answer equals it
    assert warehouse.rows(
        "SELECT amount_minor, tax_minor, credit_total_minor, stripe_tax_minor, refund_amount_minor, state "
        "FROM closeout.corrections") == [(25000, expected_tax, total, expected_tax, total, "issued")]  # fmt: skip
    (request,) = warehouse.rows(
        "SELECT request FROM closeout_data.stripe_outbox WHERE operation = 'credit_note.create'")[0]
    assert request["metadata"]["closeout_tax_minor"] == str(expected_tax)
    assert request["lines"][0]["tax_rates"] == [rate_id]

    _follow("booked")
    assert warehouse.rows("SELECT amount_minor, tax_minor FROM closeout.credit_notes") == [(total, expected_tax)]
    net = 25000 - (expected_tax if inclusive else 0)
    assert _journal(warehouse, "credit_note", note["id"]) == (
        ("credit_notes", net, 0), ("refunds", 0, total), ("tax_payable", expected_tax, 0))
    # tax payable falls with the correction
    assert warehouse.scalar("SELECT sum(credit_minor - debit_minor) FROM closeout.ledger_lines "
                            "WHERE role = 'tax_payable'") == invoice_tax - expected_tax  # fmt: skip
    checks = _recon(tmp_path, ("invoices_to_stripe", "journals", "payments_to_journals", "stripe_objects"))
    assert {name: status for name, (status, _) in checks.items()} == dict.fromkeys(checks, "passed"), checks
    with connect() as conn:
        check_tax_invariant(conn)
    check_invariant_3(warehouse, stripe_sandbox)

    # a rerun makes nothing new
    mutations = stripe_sandbox.stats()["mutations"]
    credit_notes.issue_corrections("rerun", None)
    assert stripe_sandbox.stats()["mutations"] == mutations


def test_a_stripe_tax_that_differs_from_closeouts_stops_the_credit_note_until_a_person_resolves_it(
    warehouse, stripe_sandbox
) -> None:
    invoice_id, sid = _seed(VAT20, policy="customer_balance")
    rate_id = warehouse.scalar("SELECT stripe_tax_rate_id FROM closeout.stripe_tax_rates")
    stripe_sandbox.tamper_tax_rate(rate_id, D("21"))  # Stripe would now credit 21 % on the credit lines
    _edit_down(D("7.5"))

    with pytest.raises(credit_notes.CorrectionsStopped, match="tax"):
        credit_notes.issue_corrections("forged", None)
    assert not stripe_sandbox.objects("credit_note"), "nothing is made with a tax closeout does not expect"
    assert warehouse.scalar(
        "SELECT count(*) FROM closeout_data.stripe_outbox WHERE operation = 'credit_note.create'") == 0
    (state, reason) = warehouse.rows("SELECT state, stop_reason FROM closeout.corrections")[0]
    assert state == "stopped"
    assert "Stripe would credit 5250 of tax, closeout expects 5000" in reason
    (exception_id, kind, message) = warehouse.rows(
        "SELECT exception_id, kind, message FROM closeout.payment_exceptions "
        "WHERE invoice_id = %s AND resolved_at IS NULL", (invoice_id,))[0]  # fmt: skip
    assert kind == "tax_mismatch" and "5000" in message and "5250" in message
    assert stripe_sandbox.get(sid)["amount_remaining"] == 144000
    # a rerun does not try again while the exception is open
    requests = stripe_sandbox.stats()["requests"]
    again = credit_notes.issue_corrections("still-open", None)
    assert again["issued"]["stopped"] == 0 and stripe_sandbox.stats()["requests"] == requests

    # Stripe's rate is put right, finance resolves the exception: the next run issues it with the right tax
    stripe_sandbox.tamper_tax_rate(rate_id, D("20"))
    with connect() as conn:
        exceptions.resolve(conn, exception_id, resolved_by="finance@example", resolution="rate corrected")
        conn.commit()
    result = credit_notes.issue_corrections("resumed", None)
    assert result["issued"]["resumed"] == 1 and result["issued"]["credit_notes_issued"] == 1
    (note,) = stripe_sandbox.objects("credit_note")
    assert (note["amount"], sum(t["amount"] for t in note["total_taxes"]), note["pre_payment_amount"]) == (
        30000, 5000, 30000)
    assert stripe_sandbox.get(sid)["amount_remaining"] == 114000
    assert warehouse.rows("SELECT state, tax_minor, stripe_tax_minor FROM closeout.corrections") == [
        ("issued", 5000, 5000)]
    _follow("booked")
    assert _journal(warehouse, "credit_note", note["id"]) == (
        ("credit_notes", 25000, 0), ("receivable", 0, 30000), ("tax_payable", 5000, 0))


def test_a_taxed_draft_netting_negative_credits_net_and_tax_to_the_balance_and_books_the_tax(
    warehouse, stripe_sandbox
) -> None:
    two_months_ago = (last_month() - timedelta(days=1)).replace(day=1)
    day = two_months_ago + timedelta(days=4)
    with connect() as conn:
        books = Books(conn)
        books.configure({"defaults": {"require_approval": False}, "clients": [client("harvest:t", "USD", VAT20)]})
        books.put(Entry("1", client="t", hours=D("10"), spent_date=day))
        books.draft()
        conn.commit()
    payment_tasks.publish_drafts("first")
    with connect() as conn:
        Books(conn).put(Entry("1", client="t", hours=D("12"), spent_date=day))
        Books(conn).draft()
        conn.commit()
    payment_tasks.publish_drafts("second")
    # 12 h at 100 -> 1 h at 50: neither invoice covers the decrease alone; this month's draft nets negative
    with connect() as conn:
        Books(conn).put(Entry("1", client="t", hours=D("1"), rate=D("50"), spent_date=day))
        Books(conn).draft()
        conn.commit()
    customer = warehouse.scalar("SELECT stripe_customer_id FROM closeout_data.stripe_customers")
    next_month = (date.today().replace(day=1) + timedelta(days=32)).replace(day=2)
    result = credit_notes.issue_corrections("month-over", next_month)
    assert result["issued"]["customer_balance_credits"] == 1

    tax = line_tax(115000, D("20"), False)
    assert tax == 23000
    (txn,) = [t for t in stripe_sandbox.objects("customer_balance_transaction") if t["customer"] == customer]
    assert txn["amount"] == -(115000 + tax) and txn["metadata"]["closeout_tax_minor"] == str(tax)
    assert stripe_sandbox.get(customer)["balance"] == -(115000 + tax)
    (correction_id, amount, tax_minor, total, credit) = warehouse.rows(
        "SELECT correction_id, amount_minor, tax_minor, credit_total_minor, credit_amount_minor "
        "FROM closeout.corrections")[0]  # fmt: skip
    assert (amount, tax_minor, total, credit) == (115000, tax, 115000 + tax, 115000 + tax)
    _follow("booked")
    assert _journal(warehouse, "customer_balance_credit", correction_id) == (
        ("credit_notes", 115000, 0), ("customer_credit", 0, 115000 + tax), ("tax_payable", tax, 0))
    with connect() as conn:
        check_tax_invariant(conn)


def test_the_sandbox_credits_tax_on_credit_note_lines_as_stripe_does(stripe_sandbox) -> None:
    """Through the real SDK: custom lines with tax_rates get per-line taxes (exclusive on top, inclusive inside,
    half-up in the minor unit, JPY too), total_taxes per rate, amount/total with exclusive tax; an invoice line
    credit takes its item's rates; tax_rates on an invoice_line_item line and archived rates are refused."""
    import stripe

    sdk = stripe.StripeClient(stripe_sandbox.secret_key, base_addresses={"api": stripe_sandbox.url},
                              max_network_retries=0)  # fmt: skip
    vat = sdk.v1.tax_rates.create(params={"display_name": "VAT", "percentage": "20", "inclusive": False})
    gst = sdk.v1.tax_rates.create(params={"display_name": "GST", "percentage": "10", "inclusive": True})
    customer = sdk.v1.customers.create(params={"name": "A"})
    invoice = sdk.v1.invoices.create(params={"customer": customer.id, "currency": "jpy",
                                             "collection_method": "send_invoice", "days_until_due": 30})  # fmt: skip
    sdk.v1.invoices.add_lines(invoice.id, params={"lines": [
        {"amount": 10000, "description": "a", "tax_rates": [vat.id]},
        {"amount": 11000, "description": "b", "tax_rates": [gst.id]}]})  # fmt: skip
    invoice = sdk.v1.invoices.finalize_invoice(invoice.id)
    assert invoice.total == 12000 + 11000
    # 1543 x 20 % = 308.6 -> 309; 1545 inclusive 10 % = 140.45 -> 140
    params = {"invoice": invoice.id, "lines": [
        {"type": "custom_line_item", "unit_amount": 1543, "quantity": 1, "description": "x", "tax_rates": [vat.id]},
        {"type": "custom_line_item", "unit_amount": 1545, "quantity": 1, "description": "y", "tax_rates": [gst.id]},
        {"type": "custom_line_item", "unit_amount": 100, "quantity": 1, "description": "untaxed"}]}  # fmt: skip
    preview = sdk.v1.credit_notes.preview(params=params).to_dict()
    note = sdk.v1.credit_notes.create(params=params).to_dict()
    for shown in (preview, note):
        assert [[(t["amount"], t["tax_behavior"], t["taxable_amount"]) for t in ln["taxes"]]
                for ln in shown["lines"]["data"]] == [[(309, "exclusive", 1543)], [(140, "inclusive", 1405)], []]
        by_rate = {t["tax_rate_details"]["tax_rate"]: t["amount"] for t in shown["total_taxes"]}
        assert by_rate == {vat.id: 309, gst.id: 140}
        assert (shown["subtotal"], shown["total"], shown["amount"]) == (3188, 3188 + 309, 3188 + 309)
        assert shown["total_excluding_tax"] == shown["subtotal_excluding_tax"] == 3188 - 140
    assert sdk.v1.invoices.retrieve(invoice.id).amount_remaining == 23000 - 3497

    # an invoice line credited by id carries its item's rate: 5000 of the VAT line -> 1000 of tax on top
    vat_line = next(ln for ln in sdk.v1.invoices.line_items.list(invoice.id).data if ln.description == "a")
    by_line = sdk.v1.credit_notes.preview(params={"invoice": invoice.id, "lines": [
        {"type": "invoice_line_item", "invoice_line_item": vat_line.id, "amount": 5000}]}).to_dict()  # fmt: skip
    assert (by_line["amount"], [t["amount"] for t in by_line["total_taxes"]]) == (6000, [1000])
    with pytest.raises(stripe.InvalidRequestError, match="custom_line_item"):
        sdk.v1.credit_notes.preview(params={"invoice": invoice.id, "lines": [
            {"type": "invoice_line_item", "invoice_line_item": vat_line.id, "tax_rates": [vat.id]}]})  # fmt: skip
    sdk.v1.tax_rates.update(vat.id, params={"active": False})
    with pytest.raises(stripe.InvalidRequestError, match="archived"):
        sdk.v1.credit_notes.preview(params={"invoice": invoice.id, "lines": [
            {"type": "custom_line_item", "unit_amount": 1, "description": "z", "tax_rates": [vat.id]}]})  # fmt: skip


def test_a_credit_note_stripe_made_with_a_different_tax_is_recorded_as_made_and_never_accepted_silently(
    warehouse, stripe_sandbox
) -> None:
    invoice_id, _sid = _seed(VAT20, policy="customer_balance")
    rate_id = warehouse.scalar("SELECT stripe_tax_rate_id FROM closeout.stripe_tax_rates")
    _edit_down(D("7.5"))
    # the preview agrees and the request is recorded; the create fails before Stripe commits it
    stripe_sandbox.inject("error_500", path_prefix="/v1/credit_notes", after=1)
    with pytest.raises(credit_notes.CorrectionsIncomplete):
        credit_notes.issue_corrections("first-attempt", None)
    assert not stripe_sandbox.objects("credit_note")
    assert warehouse.rows("SELECT state, tax_minor, credit_total_minor FROM closeout.corrections") == [
        ("pending", 5000, 30000)], "the expectation is on record before the call"
    # Stripe's rate changes before the retry sends the recorded request: Stripe credits 21 %
    stripe_sandbox.tamper_tax_rate(rate_id, D("21"))
    with pytest.raises(credit_notes.CorrectionsStopped, match="Stripe credited 5250 of tax, closeout expected 5000"):
        credit_notes.issue_corrections("retry", None)
    (note,) = stripe_sandbox.objects("credit_note")
    assert note["amount"] == 30250
    assert warehouse.rows("SELECT state, credit_note_id, tax_minor, stripe_tax_minor FROM closeout.corrections") == [
        ("issued", note["id"], 5000, 5250)]
    assert warehouse.rows("SELECT kind, stripe_object_id FROM closeout.payment_exceptions "
                          "WHERE invoice_id = %s AND resolved_at IS NULL", (invoice_id,)) == [
        ("tax_mismatch", note["id"])]  # fmt: skip
    # the books follow what Stripe did: its tax leaves tax payable
    _follow("booked")
    assert _journal(warehouse, "credit_note", note["id"]) == (
        ("credit_notes", 25000, 0), ("receivable", 0, 30250), ("tax_payable", 5250, 0))


def test_a_credit_note_made_in_stripe_by_hand_on_a_taxed_invoice_is_booked_with_the_tax_stripe_reports(
    warehouse, stripe_sandbox
) -> None:
    """Not closeout's: the cash sync reads it from Stripe's list with its total_taxes, and the journal debits
    tax_payable with Stripe's tax (nothing closeout expected to compare with)."""
    import stripe

    _invoice_id, sid = _seed(VAT20)
    rate_id = warehouse.scalar("SELECT stripe_tax_rate_id FROM closeout.stripe_tax_rates")
    sdk = stripe.StripeClient(stripe_sandbox.secret_key, base_addresses={"api": stripe_sandbox.url},
                              max_network_retries=0)  # fmt: skip
    _follow("published")
    note = sdk.v1.credit_notes.create(params={"invoice": sid, "lines": [
        {"type": "custom_line_item", "unit_amount": 10113, "description": "goodwill", "tax_rates": [rate_id]}]})
    assert (note.amount, note.total_taxes[0]["amount"]) == (10113 + 2023, 2023)  # 2022.6 -> 2023
    _follow("hand-made")
    assert warehouse.rows("SELECT amount_minor, tax_minor FROM closeout.credit_notes") == [(12136, 2023)]
    assert _journal(warehouse, "credit_note", note.id) == (
        ("credit_notes", 10113, 0), ("receivable", 0, 12136), ("tax_payable", 2023, 0))
