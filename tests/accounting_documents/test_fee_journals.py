"""Stripe fees pushed as ONE journal per day and currency (issue 17 items 4, 7: Xero's 600-call budget), with the
ledger journals each carries recorded (closeout.accounting_push_members) so every figure traces back; a fee booked
after its day went is pushed in a second linked journal, never an edit of the first. The sandboxes' own objects
and counts are the proof."""

from __future__ import annotations

from datetime import UTC, datetime, time
from decimal import Decimal as D

import pytest
from closeout.ledger import tasks as ledger_tasks
from documents_support import (
    a_month,
    created,
    fee_journals,
    journal_total,
    links,
    members,
    put_cash,
    run_push,
    start,
    there,
)

pytestmark = pytest.mark.integration


@pytest.fixture(params=["quickbooks", "xero"])
def books(request: pytest.FixtureRequest, warehouse, monkeypatch: pytest.MonkeyPatch):
    sandbox = start(request.param, monkeypatch)
    yield sandbox
    sandbox.stop()


def test_fees_go_as_one_journal_per_day_and_currency_with_their_members(warehouse, stripe_sandbox, books) -> None:
    a_month(warehouse, stripe_sandbox, {"a": [D("2")], "b": [D("3.5")], "c": [D("1")]}, paid=("a", "b", "c"))
    fees = fee_journals(warehouse)
    assert len(fees) == 3  # one ledger journal per Stripe balance transaction with a fee
    run = run_push(books.system)
    days = {(day, currency) for day, currency, _ in fees.values()}
    expected = {f"fees:{day}:{currency}" for day, currency in days}
    assert set(links(warehouse, books.system, "journal")) == expected, run.as_dict()
    assert created(books)["journal"] == len(days) and run.pushed["journal"] == len(days)
    # membership: every fee journal is carried by exactly the group of its day, with its amount
    recorded = members(warehouse, books.system)
    assert set(recorded) == expected
    assert {j: a for group in recorded.values() for j, a in group.items()} == {j: f[2] for j, f in fees.items()}
    for ref, group in recorded.items():
        external_id, total_minor, currency, _ = links(warehouse, books.system, "journal")[ref]
        assert total_minor == sum(group.values()) and currency == "USD"
        obj = there(books, "journal")[external_id]  # the journal there sums exactly its members
        assert journal_total(books.system, obj) == D(total_minor).scaleb(-2)
    before = books.stats()["requests"]
    again = run_push(books.system)
    assert not again.pushed and again.batches == 0 and created(books)["journal"] == len(days)
    assert [r for r in books.stats()["log"][before:] if r[0] in ("POST", "PUT")] == []


def test_a_fee_booked_after_its_day_was_pushed_goes_in_a_second_linked_journal(
    warehouse, stripe_sandbox, books
) -> None:
    a_month(warehouse, stripe_sandbox, {"a": [D("2")], "b": [D("1")]}, paid=("a", "b"))
    run_push(books.system)
    (first_ref,) = links(warehouse, books.system, "journal")
    day = first_ref.split(":")[1]
    first_id, first_total = links(warehouse, books.system, "journal")[first_ref][:2]
    first_there = there(books, "journal")[first_id]
    # Stripe posts a fee-only balance transaction (a Radar fee) dated that day, read after the day's journal went
    noon = datetime.combine(datetime.fromisoformat(day).date(), time(12), tzinfo=UTC)
    put_cash("stripe_balance_transactions", balance_transaction_id="txn_late_radar_fee", type="stripe_fee",
             reporting_category="fee", currency="usd", amount_minor=-250, created_at=noon,
             available_on=noon)  # fmt: skip
    ledger_tasks.post_journals("late-fee")
    late = [j for j, f in fee_journals(warehouse).items() if f[2] == 250]
    assert len(late) == 1
    run = run_push(books.system)
    second_ref = f"fees:{day}:USD:2"
    assert run.pushed == {"journal": 1} and set(links(warehouse, books.system, "journal")) == {first_ref, second_ref}
    assert members(warehouse, books.system)[second_ref] == {late[0]: 250}
    assert len(members(warehouse, books.system)[first_ref]) == 2  # the first keeps its two members
    assert links(warehouse, books.system, "journal")[second_ref][1:3] == (250, "USD")
    assert created(books)["journal"] == 2
    # the first journal there is untouched: same object, same amount
    assert there(books, "journal")[first_id] == first_there
    assert journal_total(books.system, first_there) == D(first_total).scaleb(-2)
    second_id = links(warehouse, books.system, "journal")[second_ref][0]
    assert journal_total(books.system, there(books, "journal")[second_id]) == D("2.50")


def test_a_lost_deposit_answer_is_replayed_and_a_fee_journal_past_its_key_lifetime_is_found_with_members(
    warehouse, stripe_sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from documents_support import books_for, follow_cash, push, set_push, write_path

    sandbox = start("xero", monkeypatch)
    try:
        a_month(warehouse, stripe_sandbox, {"a": [D("2")], "b": [D("1")]}, paid=("a", "b"))
        stripe_sandbox.run_payouts(now=stripe_sandbox.state.now() + 3 * 86400)
        follow_cash()
        # every answer of the fee journal's and the payout's writes is lost (committed there, never heard)
        for kind in ("journal", "deposit"):
            sandbox.faults.add("timeout_after_commit", path_prefix=write_path(sandbox, kind), times=2, after=0,
                               delay=0)  # fmt: skip
        # deposits go before journals: the first run loses the deposit's answers; the second resends that batch
        # under its key (the vendor replays it: linked, not created again) and loses the fee journal's answers
        for _ in range(2):
            with pytest.raises(Exception, match="no answer"):
                run_push("xero")
        assert created(sandbox)["journal"] == 1 and created(sandbox)["deposit"] == 1
        assert [v[3] for v in links(warehouse, "xero", "deposit").values()] == ["pushed"]
        assert links(warehouse, "xero", "journal") == {} and members(warehouse, "xero") == {}
        sandbox.idempotency_ttl_seconds = 60
        sandbox.advance_clock(3600)
        set_push(monkeypatch, "xero", key_lifetime_seconds=0)
        run = push(books_for("xero"))
        assert run.looked_up == 1 and run.found_by_reference == 1, run.as_dict()
        assert created(sandbox)["journal"] == 1 and created(sandbox)["deposit"] == 1  # found, not created again
        (ref,) = links(warehouse, "xero", "journal")
        assert links(warehouse, "xero", "journal")[ref][3] == "reference"
        # the members recorded are those of the journal found there
        assert members(warehouse, "xero")[ref] == {j: f[2] for j, f in fee_journals(warehouse).items()}
    finally:
        sandbox.stop()
