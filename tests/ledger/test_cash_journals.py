"""The cash leg's journals, kind by kind (issue 13 item 3), from rows of the cash contract (migration 0016) as the
cash sync writes them, on top of invoices and payments that went through closeout and the Stripe sandbox. Each
kind balances per journal and currency, is posted once (posting again posts nothing), and the ledger's Stripe
balance per settlement currency equals the sum of the balance transactions' net (invariant 7)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import psycopg
import pytest
import yaml
from closeout.ledger import accounts
from closeout.ledger import tasks as ledger_tasks
from closeout.warehouse.db import connect
from ledger_support import (
    charge_of,
    check_cash_invariants,
    follow,
    ledger_stripe_balance,
    lines_of,
    publish,
    put_cash,
    receivable,
    role_balance,
    update_cash,
)

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def at(hours: int) -> datetime:
    return T0 + timedelta(hours=hours)


def _post() -> dict[str, int]:
    return ledger_tasks.post_journals("cash-test")["by_kind"]


def _posts_nothing_again(warehouse) -> None:
    before = warehouse.scalar("SELECT count(*) FROM closeout.ledger_lines")
    assert ledger_tasks.post_journals("again")["journals"] == 0
    assert warehouse.scalar("SELECT count(*) FROM closeout.ledger_lines") == before


def _paid(warehouse, stripe_sandbox, clients: dict, **kwargs) -> dict[str, tuple[str, str, int]]:
    """client -> (invoice_id, charge_id, total): published, paid in full by card, invoice and payment posted."""
    inv = publish(warehouse, clients, **kwargs)
    for _, sid, _ in inv.values():
        stripe_sandbox.pay_invoice(sid)
    follow()
    return {c: (iid, charge_of(warehouse, iid), total) for c, (iid, _, total) in inv.items()}


def _charge_txn(txn: str, charge: str, invoice: str, amount: int, fee: int = 0, currency: str = "USD",
                presentment: tuple[str, int] | None = None, hours: int = 0) -> None:  # fmt: skip
    put_cash("stripe_balance_transactions", balance_transaction_id=txn, type="charge", reporting_category="charge",
             currency=currency, amount_minor=amount, fee_minor=fee, source_id=charge, source_type="charge",
             charge_id=charge, invoice_id=invoice, presentment_currency=(presentment or (currency, amount))[0],
             presentment_amount_minor=(presentment or (currency, amount))[1], created_at=at(hours))  # fmt: skip


def _refund(refund: str, charge: str, invoice: str, amount: int, txn_amount: int | None = None, *,
            currency: str = "USD", settlement: str = "USD", status: str = "succeeded", credit_note: str | None = None,
            hours: int = 1) -> None:  # fmt: skip
    put_cash("stripe_balance_transactions", balance_transaction_id=f"txn_{refund}", type="refund",
             reporting_category="refund", currency=settlement, amount_minor=-(txn_amount or amount), source_id=refund,
             source_type="refund", charge_id=charge, invoice_id=invoice, presentment_currency=currency,
             presentment_amount_minor=-amount, created_at=at(hours))  # fmt: skip
    put_cash("refunds", refund_id=refund, invoice_id=invoice, charge_id=charge, credit_note_id=credit_note,
             currency=currency, amount_minor=amount, status=status, balance_transaction_id=f"txn_{refund}",
             created_at=at(hours))  # fmt: skip


def test_stripe_fees_are_booked_from_balance_transactions_once(warehouse, stripe_sandbox) -> None:
    a_id, a_ch, a_total = _paid(warehouse, stripe_sandbox, {"a": [D("4")]})["a"]
    _charge_txn("txn_a", a_ch, a_id, a_total, fee=1190)
    put_cash("stripe_balance_transactions", balance_transaction_id="txn_billing", type="stripe_fee",
             reporting_category="fee", currency="USD", amount_minor=-250, source_type="stripe_fee", created_at=at(2))
    put_cash("stripe_balance_transactions", balance_transaction_id="txn_fee_credit", type="stripe_fee",
             reporting_category="fee", currency="USD", amount_minor=100, source_type="stripe_fee", created_at=at(3))
    assert _post() == {"fee": 3}
    assert lines_of(warehouse, "fee", "txn_a") == (("USD", "processor_fees", 1190, 0),
                                                   ("USD", "cash_clearing", 0, 1190))  # fmt: skip
    assert lines_of(warehouse, "fee", "txn_billing") == (("USD", "processor_fees", 250, 0),
                                                         ("USD", "cash_clearing", 0, 250))  # fmt: skip
    assert lines_of(warehouse, "fee", "txn_fee_credit") == (("USD", "cash_clearing", 100, 0),
                                                            ("USD", "processor_fees", 0, 100))  # fmt: skip
    assert warehouse.scalar("SELECT charge_id FROM closeout.ledger_journals WHERE source_ref = 'txn_a'") == a_ch
    assert ledger_stripe_balance(warehouse) == {"USD": a_total - 1190 - 250 + 100}
    check_cash_invariants(warehouse)
    _posts_nothing_again(warehouse)


def test_every_refund_is_booked_once_whoever_made_it_and_a_failed_one_is_reversed(warehouse, stripe_sandbox) -> None:
    inv = publish(warehouse, {"a": [D("4")]})
    a_id, a_sid, a_total = inv["a"]
    stripe_sandbox.pay_invoice(a_sid)
    (made,) = stripe_sandbox.refund(a_sid, 700)  # closeout's events record it in invoice_payments too
    follow()
    a_ch = charge_of(warehouse, a_id)
    assert warehouse.scalar("SELECT count(*) FROM closeout.invoice_payments WHERE kind = 'refund'") == 1
    assert warehouse.scalar("SELECT count(*) FROM closeout.ledger_journals WHERE kind = 'refund'") == 0, (
        "invoice_payments' refund rows are no longer a source: the refund objects are")
    _charge_txn("txn_a", a_ch, a_id, a_total)
    _refund(made["id"], a_ch, a_id, 700, hours=1)
    _refund("re_credit_note", a_ch, a_id, 1000, credit_note="cn_1", hours=2)
    _refund("re_dashboard", a_ch, a_id, 500, hours=3)
    _refund("re_pending", a_ch, a_id, 300, status="pending", hours=4)
    put_cash("refunds", refund_id="re_canceled", invoice_id=a_id, charge_id=a_ch, currency="USD", amount_minor=200,
             status="canceled", created_at=at(5))  # never moved the balance: nothing to book
    assert _post() == {"refund": 4}
    assert lines_of(warehouse, "refund", "re_dashboard") == (("USD", "refunds", 500, 0),
                                                             ("USD", "cash_clearing", 0, 500))  # fmt: skip
    assert warehouse.scalar("SELECT description FROM closeout.ledger_journals WHERE source_ref = 're_credit_note'"
                            ).endswith("(credit note cn_1)")  # fmt: skip
    check_cash_invariants(warehouse)

    update_cash("refunds", "refund_id", "re_pending", status="failed", failure_balance_transaction_id="txn_back")
    _posts_nothing_again(warehouse)  # Stripe has not returned the money yet: the ledger waits for its transaction
    put_cash("stripe_balance_transactions", balance_transaction_id="txn_back", type="refund_failure",
             reporting_category="refund_failure", currency="USD", amount_minor=300, source_id="re_pending",
             source_type="refund", charge_id=a_ch, invoice_id=a_id, presentment_currency="USD",
             presentment_amount_minor=300, created_at=at(6))  # fmt: skip
    assert _post() == {"refund_failure": 1}
    original = warehouse.scalar("SELECT journal_id FROM closeout.ledger_journals WHERE kind = 'refund' "
                                "AND source_ref = 're_pending'")  # fmt: skip
    assert warehouse.rows("SELECT reverses_journal_id FROM closeout.ledger_journals WHERE kind = 'refund_failure'"
                          ) == [(original,)]  # fmt: skip
    assert lines_of(warehouse, "refund_failure", "re_pending") == (("USD", "refunds", 0, 300),
                                                                   ("USD", "cash_clearing", 300, 0))  # fmt: skip
    assert role_balance(warehouse, "refunds") == {"USD": 700 + 1000 + 500}
    assert receivable(warehouse, "a") == 0
    check_cash_invariants(warehouse)
    _posts_nothing_again(warehouse)


def test_refunds_booked_from_invoice_payments_before_the_cash_leg_are_not_booked_again(warehouse, stripe_sandbox):
    a_id, a_ch, a_total = _paid(warehouse, stripe_sandbox, {"a": [D("4")]})["a"]
    # what the refund step posted before migration 0017 for charge.refunded (cumulative 1000 refunded)
    with connect() as conn:
        chart = accounts.read()
        legacy = f"refund:{a_ch}:1000"
        conn.execute(
            """INSERT INTO closeout_data.journals (journal_id, kind, source_ref, currency, invoice_id, occurred_at,
                   description)
               VALUES (closeout_data.journal_id('refund', %s), 'refund', %s, 'USD', %s, now(), 'old')""",
            (legacy, legacy, a_id),
        )
        for n, role, debit, credit in ((1, "refunds", 1000, 0), (2, "cash_clearing", 0, 1000)):
            conn.execute(
                """INSERT INTO closeout_data.journal_lines (journal_id, line_no, currency, role, account_code,
                       debit_minor, credit_minor) VALUES (closeout_data.journal_id('refund', %s), %s, 'USD', %s, %s,
                       %s, %s)""",
                (legacy, n, role, chart.codes[role], debit, credit),
            )
        conn.commit()
    _charge_txn("txn_a", a_ch, a_id, a_total)
    _refund("re_first", a_ch, a_id, 1000, hours=1)  # the refund the old journal booked
    _refund("re_second", a_ch, a_id, 500, hours=2)
    assert _post() == {"refund": 1}
    assert warehouse.rows("SELECT source_ref FROM closeout.ledger_journals WHERE kind = 'refund' ORDER BY posted_at"
                          ) == [(legacy,), ("re_second",)]  # fmt: skip
    assert role_balance(warehouse, "refunds") == {"USD": 1500}
    check_cash_invariants(warehouse)


def test_disputes_withdraw_with_their_fee_a_won_one_is_reinstated_a_lost_one_stays(warehouse, stripe_sandbox) -> None:
    paid = _paid(warehouse, stripe_sandbox, {"b": [D("3")], "c": [D("2")]})
    for n, client in enumerate(("b", "c")):
        inv, ch, total = paid[client]
        _charge_txn(f"txn_{client}", ch, inv, total, fee=100, hours=n)
        put_cash("stripe_balance_transactions", balance_transaction_id=f"txn_dp_{client}", type="adjustment",
                 reporting_category="dispute", currency="USD", amount_minor=-total, fee_minor=1500,
                 source_id=f"dp_{client}", source_type="dispute", charge_id=ch, invoice_id=inv,
                 presentment_currency="USD", presentment_amount_minor=-total, created_at=at(5 + n))  # fmt: skip
        put_cash("disputes", dispute_id=f"dp_{client}", invoice_id=inv, charge_id=ch, currency="USD",
                 amount_minor=total, status="needs_response", reason="fraudulent", created_at=at(5 + n))
    assert _post() == {"dispute": 2, "fee": 4}
    b_total, c_total = paid["b"][2], paid["c"][2]
    assert lines_of(warehouse, "dispute", "dp_b") == (("USD", "disputes", b_total, 0),
                                                      ("USD", "cash_clearing", 0, b_total))  # fmt: skip
    assert lines_of(warehouse, "fee", "txn_dp_b") == (("USD", "dispute_fees", 1500, 0),
                                                      ("USD", "cash_clearing", 0, 1500))  # fmt: skip
    check_cash_invariants(warehouse)

    update_cash("disputes", "dispute_id", "dp_b", status="won", closed_at=at(20))
    update_cash("disputes", "dispute_id", "dp_c", status="lost", closed_at=at(20))
    _posts_nothing_again(warehouse)  # won, but Stripe has not reinstated the funds yet
    put_cash("stripe_balance_transactions", balance_transaction_id="txn_dp_b_back", type="adjustment",
             reporting_category="dispute_reversal", currency="USD", amount_minor=b_total, source_id="dp_b",
             source_type="dispute", charge_id=paid["b"][1], invoice_id=paid["b"][0], presentment_currency="USD",
             presentment_amount_minor=b_total, created_at=at(21))  # fmt: skip
    assert _post() == {"dispute_reinstatement": 1}
    assert lines_of(warehouse, "dispute_reinstatement", "dp_b") == (("USD", "disputes", 0, b_total),
                                                                    ("USD", "cash_clearing", b_total, 0))  # fmt: skip
    assert role_balance(warehouse, "disputes") == {"USD": c_total}, "the lost dispute stays booked"
    assert role_balance(warehouse, "dispute_fees") == {"USD": 3000}, "both fees stay, won or lost"
    assert receivable(warehouse, "b") == 0 and receivable(warehouse, "c") == 0
    check_cash_invariants(warehouse)
    _posts_nothing_again(warehouse)


def test_a_foreign_charge_refunded_at_other_rates_books_the_realised_difference(warehouse, stripe_sandbox) -> None:
    """50,000 EUR minor units paid and settled at 1.10 (55,000 USD); refunded 20,000 then 30,000 at 1.05: the
    presentment side nets to zero and the 2,500 USD Stripe kept is a realised gain. The second refund then fails
    (the money returns at its own rate) and is refunded again at 1.20: a second realisation, a 4,500 loss."""
    d_id, d_ch, d_total = _paid(warehouse, stripe_sandbox, {"d": [D("5")]}, currency="EUR")["d"]
    assert d_total == 50_000
    _charge_txn("txn_d", d_ch, d_id, 55_000, fee=1625, presentment=("EUR", 50_000))
    assert _post() == {"fee": 1, "fx_conversion": 1}
    assert lines_of(warehouse, "fx_conversion", "txn_d") == (
        ("EUR", "fx_clearing", 50_000, 0), ("EUR", "cash_clearing", 0, 50_000),
        ("USD", "cash_clearing", 55_000, 0), ("USD", "fx_clearing", 0, 55_000))  # fmt: skip
    assert ledger_stripe_balance(warehouse) == {"USD": 55_000 - 1625}, "no EUR left in the Stripe balance"
    check_cash_invariants(warehouse)

    _refund("re_1", d_ch, d_id, 20_000, 21_000, currency="EUR", hours=1)
    assert _post() == {"refund": 1, "fx_conversion": 1}, "EUR not netted to zero yet: nothing realised"
    assert lines_of(warehouse, "refund", "re_1") == (("EUR", "refunds", 20_000, 0), ("EUR", "cash_clearing", 0, 20_000))
    assert lines_of(warehouse, "fx_conversion", "txn_re_1") == (
        ("EUR", "fx_clearing", 0, 20_000), ("EUR", "cash_clearing", 20_000, 0),
        ("USD", "cash_clearing", 0, 21_000), ("USD", "fx_clearing", 21_000, 0))  # fmt: skip
    _refund("re_2", d_ch, d_id, 30_000, 31_500, currency="EUR", hours=2)
    assert _post() == {"refund": 1, "fx_conversion": 1, "fx_realised": 1}
    assert lines_of(warehouse, "fx_realised", f"{d_ch}:0") == (("USD", "fx_gain_loss", 0, 2_500),
                                                               ("USD", "fx_clearing", 2_500, 0))  # fmt: skip
    assert role_balance(warehouse, "fx_clearing") == {}
    check_cash_invariants(warehouse)
    _posts_nothing_again(warehouse)

    update_cash("refunds", "refund_id", "re_2", status="failed")
    put_cash("stripe_balance_transactions", balance_transaction_id="txn_re_2_back", type="refund_failure",
             reporting_category="refund_failure", currency="USD", amount_minor=31_500, source_id="re_2",
             source_type="refund", charge_id=d_ch, invoice_id=d_id, presentment_currency="EUR",
             presentment_amount_minor=30_000, created_at=at(3))  # fmt: skip
    assert _post() == {"refund_failure": 1, "fx_conversion": 1}
    _refund("re_3", d_ch, d_id, 30_000, 36_000, currency="EUR", hours=4)
    assert _post() == {"refund": 1, "fx_conversion": 1, "fx_realised": 1}
    assert lines_of(warehouse, "fx_realised", f"{d_ch}:1") == (("USD", "fx_gain_loss", 4_500, 0),
                                                               ("USD", "fx_clearing", 0, 4_500))  # fmt: skip
    assert role_balance(warehouse, "fx_gain_loss") == {"USD": 2_000}, "55,000 in, 57,000 back: a 2,000 loss"
    assert role_balance(warehouse, "cash_clearing") == {"USD": 55_000 - 1625 - 21_000 - 36_000}
    check_cash_invariants(warehouse)
    _posts_nothing_again(warehouse)


def test_credit_notes_before_and_after_payment_and_a_void_reverses(warehouse, stripe_sandbox) -> None:
    inv = publish(warehouse, {"d": [D("3")], "e": [D("4")]})
    (d_id, _, d_total), (e_id, e_sid, e_total) = inv["d"], inv["e"]
    stripe_sandbox.pay_invoice(e_sid)
    follow()
    e_ch = charge_of(warehouse, e_id)
    _charge_txn("txn_e", e_ch, e_id, e_total)
    put_cash("credit_notes", credit_note_id="cn_pre", invoice_id=d_id, stripe_invoice_id="in_d", currency="USD",
             amount_minor=1000, pre_payment_amount_minor=1000, status="issued", created_at=at(1))
    put_cash("credit_notes", credit_note_id="cn_post", invoice_id=e_id, stripe_invoice_id="in_e", currency="USD",
             amount_minor=1500, post_payment_amount_minor=1500, refund_amount_minor=700, credit_amount_minor=500,
             out_of_band_amount_minor=300, status="issued", created_at=at(2))  # fmt: skip
    _refund("re_cn", e_ch, e_id, 700, credit_note="cn_post", hours=2)
    assert _post() == {"credit_note": 2, "refund": 1}
    assert lines_of(warehouse, "credit_note", "cn_pre") == (("USD", "credit_notes", 1000, 0),
                                                           ("USD", "receivable", 0, 1000))  # fmt: skip
    assert lines_of(warehouse, "credit_note", "cn_post") == (
        ("USD", "credit_notes", 1500, 0), ("USD", "refunds", 0, 700), ("USD", "customer_credit", 0, 500),
        ("USD", "cash", 0, 300))  # fmt: skip
    assert receivable(warehouse, "d") == d_total - 1000
    assert role_balance(warehouse, "refunds") == {}, "the credit note's refund is contra revenue once, as a credit note"
    assert role_balance(warehouse, "credit_notes") == {"USD": 2500}
    assert role_balance(warehouse, "cash_clearing") == {"USD": e_total - 700}, "the refund moved the cash once"
    check_cash_invariants(warehouse)  # invariant 5: the open invoice owes its total less the pre-payment credit

    update_cash("credit_notes", "credit_note_id", "cn_pre", status="void", voided_at=at(3))
    assert _post() == {"credit_note_void": 1}
    original = warehouse.scalar("SELECT journal_id FROM closeout.ledger_journals WHERE kind = 'credit_note' "
                                "AND source_ref = 'cn_pre'")  # fmt: skip
    assert warehouse.rows("SELECT reverses_journal_id FROM closeout.ledger_journals WHERE kind = 'credit_note_void'"
                          ) == [(original,)]  # fmt: skip
    assert lines_of(warehouse, "credit_note_void", "cn_pre") == (("USD", "credit_notes", 0, 1000),
                                                                 ("USD", "receivable", 1000, 0))  # fmt: skip
    assert receivable(warehouse, "d") == d_total
    check_cash_invariants(warehouse)
    _posts_nothing_again(warehouse)


def test_stripe_payouts_go_through_transit_to_the_bank_once_and_failures_come_back(warehouse, stripe_sandbox) -> None:
    a_id, a_ch, a_total = _paid(warehouse, stripe_sandbox, {"a": [D("9")]})["a"]
    _charge_txn("txn_a", a_ch, a_id, a_total)
    for n, po in enumerate(("po_paid", "po_failed", "po_late_fail", "po_canceled")):
        put_cash("stripe_balance_transactions", balance_transaction_id=f"txn_{po}", type="payout",
                 reporting_category="payout", currency="USD", amount_minor=-10_000, source_id=po,
                 source_type="payout", created_at=at(10 + n))  # fmt: skip
        put_cash("stripe_payouts", payout_id=po, currency="USD", amount_minor=10_000, status="pending",
                 automatic=n == 0, arrival_date=(T0 + timedelta(days=2)).date(), created_at=at(10 + n),
                 balance_transaction_id=f"txn_{po}")  # fmt: skip
    assert _post() == {"stripe_payout": 4}
    assert lines_of(warehouse, "stripe_payout", "po_paid") == (("USD", "bank_clearing", 10_000, 0),
                                                               ("USD", "cash_clearing", 0, 10_000))  # fmt: skip
    assert role_balance(warehouse, "bank_clearing") == {"USD": 40_000}
    check_cash_invariants(warehouse)

    update_cash("stripe_payouts", "payout_id", "po_paid", status="paid")
    update_cash("stripe_payouts", "payout_id", "po_late_fail", status="paid")
    assert _post() == {"stripe_payout_paid": 2}
    assert lines_of(warehouse, "stripe_payout_paid", "po_paid") == (("USD", "cash", 10_000, 0),
                                                                    ("USD", "bank_clearing", 0, 10_000))  # fmt: skip
    for po, kind in (("po_failed", "payout_failure"), ("po_late_fail", "payout_failure"),
                     ("po_canceled", "payout_cancel")):  # fmt: skip
        update_cash("stripe_payouts", "payout_id", po, status="canceled" if kind == "payout_cancel" else "failed",
                    failure_balance_transaction_id=f"txn_{po}_back")
        put_cash("stripe_balance_transactions", balance_transaction_id=f"txn_{po}_back", type=kind,
                 reporting_category="payout_reversal", currency="USD", amount_minor=10_000, source_id=po,
                 source_type="payout", created_at=at(30))  # fmt: skip
    assert _post() == {"stripe_payout_failure": 3}
    assert lines_of(warehouse, "stripe_payout_failure", "po_failed") == (("USD", "cash_clearing", 10_000, 0),
                                                                         ("USD", "bank_clearing", 0, 10_000))
    assert lines_of(warehouse, "stripe_payout_failure", "po_late_fail") == (("USD", "cash_clearing", 10_000, 0),
                                                                            ("USD", "cash", 0, 10_000))
    assert role_balance(warehouse, "bank_clearing") == {}
    assert role_balance(warehouse, "cash") == {"USD": 10_000}, "only the payout that arrived and stayed is in the bank"
    assert ledger_stripe_balance(warehouse) == {"USD": a_total - 10_000}
    check_cash_invariants(warehouse)
    _posts_nothing_again(warehouse)


def _hand_journal(kind: str, source: str, currency: str, lines: list[tuple[str, str, int, int]]) -> None:
    chart = accounts.read()
    with connect() as conn:
        accounts.mirror(conn, chart)
        conn.execute(
            """INSERT INTO closeout_data.journals (journal_id, kind, source_ref, currency, occurred_at, description)
               VALUES (closeout_data.journal_id(%s, %s), %s, %s, %s, now(), 'by hand')""",
            (kind, source, kind, source, currency),
        )
        for n, (cur, role, debit, credit) in enumerate(lines, 1):
            conn.execute(
                """INSERT INTO closeout_data.journal_lines (journal_id, line_no, currency, role, account_code,
                       debit_minor, credit_minor) VALUES (closeout_data.journal_id(%s, %s), %s, %s, %s, %s, %s, %s)""",
                (kind, source, n, cur, role, chart.codes[role], debit, credit),
            )
        conn.commit()


def test_only_a_conversion_mixes_currencies_and_each_currency_balances(warehouse) -> None:
    eur = [("EUR", "fx_clearing", 1000, 0), ("EUR", "cash_clearing", 0, 1000)]
    usd = [("USD", "cash_clearing", 1100, 0), ("USD", "fx_clearing", 0, 1100)]
    with pytest.raises(psycopg.errors.CheckViolation, match="only a currency conversion mixes currencies"):
        _hand_journal("fee", "txn_x", "USD", [*usd, *eur])
    short = [eur[0], ("EUR", "cash_clearing", 0, 999)]
    with pytest.raises(psycopg.errors.CheckViolation, match="does not balance in EUR: debits 1000, credits 999"):
        _hand_journal("fx_conversion", "txn_y", "USD", [*short, *usd])
    _hand_journal("fx_conversion", "txn_z", "USD", [*eur, *usd])
    assert warehouse.rows("SELECT currency, debit_minor, credit_minor, balanced FROM closeout.journal_balance "
                          "ORDER BY currency") == [("EUR", 1000, 1000, True), ("USD", 1100, 1100, True)]  # fmt: skip


def test_a_chart_without_the_cash_roles_is_refused_before_anything_is_posted() -> None:
    raw = yaml.safe_load(accounts.default_path().read_text())
    raw["accounts"] = [a for a in raw["accounts"] if a.get("role") not in ("fx_clearing", "bank_clearing")]
    with pytest.raises(accounts.ChartError, match=r"no account for role\(s\) fx_clearing, bank_clearing"):
        accounts.parse(raw, origin="accounts.yaml")


def test_a_refund_waits_for_its_charges_payment_to_be_booked(warehouse, stripe_sandbox) -> None:
    """Stripe's refund can be read before closeout applied the payment event of its charge: the refund (and
    its conversion) waits, so cash never leaves the books before it entered them; the next run books both."""
    a_id, _, a_total = publish(warehouse, {"a": [D("4")]})["a"]
    follow()  # the invoice is posted, not yet paid
    _charge_txn("txn_a", "ch_early", a_id, a_total)
    _refund("re_early", "ch_early", a_id, 500)
    assert _post() == {}
    assert ledger_stripe_balance(warehouse) == {}
    with connect() as conn:  # the payment event of that charge, as closeout.payments records it
        conn.execute(
            """INSERT INTO closeout_data.invoice_payments (payment_ref, invoice_id, kind, amount_minor, currency,
                   occurred_at, stripe_object_id, charge_id, event_id)
               VALUES ('inpay_early', %s, 'payment', %s, 'USD', now(), 'inpay_early', 'ch_early', 'evt_early')""",
            (a_id, a_total),
        )
        conn.commit()
    assert _post() == {"payment": 1, "refund": 1}
    assert ledger_stripe_balance(warehouse) == {"USD": a_total - 500}
    assert warehouse.rows("SELECT * FROM closeout.journal_balance WHERE NOT balanced") == []
