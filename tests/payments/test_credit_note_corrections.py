"""Corrections after issue become Stripe credit notes: the real warehouse, the real drafting and publishing,
the Stripe sandbox through the real SDK, and closeout_stripe_publish in a real DAG run.

An entry edited down or deleted after its invoice was issued is credited on that invoice: on an open
invoice the credit comes off what is due; on a paid one it is refunded, put on the customer's balance or
recorded out of band, as the client's policy says, split as Stripe's preview says. Each credit note is made
once, across a timeout after Stripe committed and a key older than Stripe keeps it; a rerun makes nothing
new; invariant 1 holds counting the credit notes, invariant 3 (one Stripe invoice per invoice, same total)
still holds."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal as D

import pytest
from billing_support import Books, Entry, check_invariants
from closeout.payments import credit_notes, tasks
from closeout.payments.cash.tasks import sync_cash
from closeout.warehouse.db import connect
from payments_support import check_invariant_3, last_month

pytestmark = pytest.mark.integration

CLIENT = "harvest:a"


def _publish(policy: str = "customer_balance", hours: tuple[D, ...] = (D("10"), D("2"))) -> tuple[str, str]:
    """One client's invoice for last month, published through closeout's own publish: (invoice id, Stripe id)."""
    day = last_month() + timedelta(days=4)
    with connect() as conn:
        books = Books(conn)
        client = {"client_key": CLIENT, "name": "Client A", "email": "ap@a.example", "currency": "USD",
                  "grouping": "entry", "credit_note_policy": policy}
        books.configure({"defaults": {"require_approval": False}, "clients": [client]})
        books.put(*[Entry(str(n), client="a", hours=h, spent_date=day) for n, h in enumerate(hours, start=1)])
        books.draft()
        conn.commit()
    tasks.publish_drafts("seed")
    with connect() as conn:
        invoice_id, sid, status = conn.execute(
            "SELECT invoice_id, stripe_invoice_id, status FROM closeout.invoices WHERE client_key = %s", (CLIENT,)
        ).fetchone()
    assert status == "open" and sid
    return invoice_id, sid


def _change(*entries: Entry, delete: tuple[str, ...] = ()) -> None:
    """Entries edited (or deleted) in the tracker after the invoice went out, and drafted as usual."""
    with connect() as conn:
        books = Books(conn)
        books.put(*entries)
        for source_id in delete:
            books.delete(source_id)
        books.draft()
        conn.commit()


def _edited(source_id: str, hours: D) -> Entry:
    return Entry(source_id, client="a", hours=hours, spent_date=last_month() + timedelta(days=4))


def _pay(stripe_sandbox, sid: str) -> None:
    """The customer pays by card; closeout learns it from Stripe's events, as always."""
    stripe_sandbox.pay_invoice(sid)
    tasks.collect_events("events")
    tasks.apply_events("events")


def _corrections(warehouse) -> list[tuple]:
    return warehouse.rows(
        """SELECT kind, invoice_id, amount_minor, state, policy, pre_payment_amount_minor, refund_amount_minor,
                  credit_amount_minor, out_of_band_amount_minor, credit_note_id
           FROM closeout.corrections ORDER BY correction_id"""
    )


def _credit_notes(stripe_sandbox, sid: str) -> list[dict]:
    return [n for n in stripe_sandbox.objects("credit_note") if n["invoice"] == sid]


def _invariants() -> None:
    with connect() as conn:
        check_invariants(conn)


def test_an_entry_edited_down_after_an_open_invoice_is_credited_before_payment_in_a_dag_run(
    warehouse, stripe_sandbox, run_dag
) -> None:
    invoice_id, sid = _publish()
    assert stripe_sandbox.get(sid)["amount_remaining"] == 120000
    _change(_edited("1", D("7.5")))  # 10 h -> 7.5 h: 250.00 less

    result = run_dag("closeout_stripe_publish")
    assert result.state == "success", result
    (note,) = _credit_notes(stripe_sandbox, sid)
    assert (note["amount"], note["pre_payment_amount"], note["post_payment_amount"]) == (25000, 25000, 0)
    assert note["metadata"]["closeout_invoice_id"] == invoice_id
    assert [ln["amount"] for ln in note["lines"]["data"]] == [25000]
    assert "harvest:1" in note["lines"]["data"][0]["description"]
    invoice = stripe_sandbox.get(sid)
    assert invoice["amount_remaining"] == 95000 and invoice["pre_payment_credit_notes_amount"] == 25000
    assert _corrections(warehouse) == [("credit_note", invoice_id, 25000, "issued", "customer_balance", 25000, 0, 0,
                                        0, note["id"])]  # fmt: skip
    # linked to the entry version it corrects, for the amount it takes off
    assert warehouse.rows(
        "SELECT source_id, version, amount_minor, credit_note_id, billed FROM closeout.credit_note_lines"
    ) == [("1", 2, -25000, note["id"], True)]
    assert warehouse.rows(
        "SELECT credit_note_id, invoice_id, stripe_invoice_id, amount_minor, pre_payment_amount_minor, status "
        "FROM closeout.credit_notes"
    ) == [(note["id"], invoice_id, sid, 25000, 25000, "issued")]
    # nothing of it waits on next month's draft
    assert warehouse.scalar(
        "SELECT count(*) FROM closeout.invoice_lines l JOIN closeout.invoices i USING (invoice_id) "
        "WHERE i.status = 'draft' AND l.amount_minor < 0"
    ) == 0
    assert warehouse.scalar("SELECT count(*) FROM closeout.stripe_outbox WHERE status <> 'done'") == 0
    _invariants()
    check_invariant_3(warehouse, stripe_sandbox)

    mutations = stripe_sandbox.stats()["mutations"]
    assert run_dag("closeout_stripe_publish").state == "success"
    assert stripe_sandbox.stats()["mutations"] == mutations, "a rerun with nothing new sends nothing"
    assert len(stripe_sandbox.objects("credit_note")) == 1


@pytest.mark.parametrize("policy", ["refund", "customer_balance", "out_of_band"])
def test_a_paid_invoice_corrected_down_is_credited_after_payment_as_the_client_policy_says(
    warehouse, stripe_sandbox, policy: str
) -> None:
    invoice_id, sid = _publish(policy)
    _pay(stripe_sandbox, sid)
    assert warehouse.scalar("SELECT status FROM closeout.invoices WHERE invoice_id = %s", (invoice_id,)) == "paid"
    customer = stripe_sandbox.get(sid)["customer"]
    refunds_before = stripe_sandbox.count("refund")
    _change(_edited("2", D("0.5")))  # 2 h -> 0.5 h: 150.00 less

    result = credit_notes.issue_corrections("paid", None)
    assert result["issued"]["credit_notes_issued"] == 1
    (note,) = _credit_notes(stripe_sandbox, sid)
    assert (note["amount"], note["pre_payment_amount"], note["post_payment_amount"]) == (15000, 0, 15000)
    refund, balance, out_of_band = {"refund": (15000, 0, 0), "customer_balance": (0, 15000, 0),
                                    "out_of_band": (0, 0, 15000)}[policy]  # fmt: skip
    assert _corrections(warehouse) == [("credit_note", invoice_id, 15000, "issued", policy, 0, refund, balance,
                                        out_of_band, note["id"])]  # fmt: skip
    assert stripe_sandbox.count("refund") - refunds_before == (1 if refund else 0)
    if refund:
        assert sum(r["amount"] for r in stripe_sandbox.objects("refund")) == 15000
    assert stripe_sandbox.get(customer)["balance"] == -balance
    assert (note.get("out_of_band_amount") or 0) == out_of_band
    _invariants()
    check_invariant_3(warehouse, stripe_sandbox)

    # the cash sync reads the same credit note from Stripe's list: one row, both writers agree on it
    cash_columns = ("SELECT credit_note_id, invoice_id, amount_minor, pre_payment_amount_minor, refund_amount_minor,"
                    " credit_amount_minor, out_of_band_amount_minor, cardinality(refund_ids), status"
                    " FROM closeout.credit_notes")  # fmt: skip
    expected = [(note["id"], invoice_id, 15000, 0, refund, balance, out_of_band, 1 if refund else 0, "issued")]
    assert warehouse.rows(cash_columns) == expected
    sync_cash("cash")
    assert warehouse.rows(cash_columns) == expected


def test_a_deleted_entry_is_credited_in_full_on_its_invoice_and_the_reconciliation_ties_out(
    warehouse, stripe_sandbox, tmp_path
) -> None:
    from closeout.recon.checks import CHECKS
    from closeout.recon.runner import run_reconciliation

    _, sid = _publish()
    _change(delete=("2",))
    credit_notes.issue_corrections("deleted", None)
    (note,) = _credit_notes(stripe_sandbox, sid)
    assert note["amount"] == 20000 and stripe_sandbox.get(sid)["amount_remaining"] == 100000
    assert warehouse.rows("SELECT source_id, amount_minor FROM closeout.credit_note_lines") == [("2", -20000)]
    on_invoices = "SELECT sum(amount_minor) FROM closeout.invoice_line_entries WHERE source_id = '2'"
    assert warehouse.scalar(on_invoices) == 20000, "the invoice keeps what it billed; the credit note takes it back"
    _invariants()
    # the reconciliation's entries check (invariants 1-2) counts the credit note as the tests' helper does
    entries = tuple(c for c in CHECKS if c.name == "entries_to_invoice_lines")
    with connect() as conn:
        result = run_reconciliation(conn, data_docs_dir=tmp_path / "docs", checks=entries)
    assert [(c.check_name, c.status) for c in result.checks] == [("entries_to_invoice_lines", "passed")]


def test_a_timeout_after_stripe_made_the_credit_note_is_replayed_not_repeated(warehouse, stripe_sandbox) -> None:
    _, sid = _publish()
    _change(_edited("1", D("9")))
    # the preview passes; the create reaches Stripe and is committed there, and its answer never comes back
    stripe_sandbox.inject("timeout_after_commit", path_prefix="/v1/credit_notes", after=1, delay=8)
    with pytest.raises(credit_notes.CorrectionsIncomplete):
        credit_notes.issue_corrections("first-attempt", None)
    assert len(_credit_notes(stripe_sandbox, sid)) == 1, "Stripe made it"
    assert warehouse.rows("SELECT state FROM closeout.corrections") == [("pending",)], "we never heard back"

    credit_notes.issue_corrections("retry", None)
    assert len(_credit_notes(stripe_sandbox, sid)) == 1
    assert warehouse.rows(
        "SELECT operation, status, resolved_by, attempts FROM closeout.stripe_outbox WHERE operation LIKE 'credit%'"
    ) == [("credit_note.create", "done", "replay", 2)]
    assert warehouse.rows("SELECT state, amount_minor FROM closeout.corrections") == [("issued", 10000)]
    assert stripe_sandbox.get(sid)["amount_remaining"] == 110000
    _invariants()


def test_a_key_older_than_stripe_keeps_it_is_resolved_by_metadata_not_by_a_second_credit_note(
    warehouse, stripe_sandbox
) -> None:
    _, sid = _publish()
    _change(_edited("1", D("9")))
    stripe_sandbox.inject("timeout_after_commit", path_prefix="/v1/credit_notes", after=1, delay=8)
    with pytest.raises(credit_notes.CorrectionsIncomplete):
        credit_notes.issue_corrections("first-attempt", None)
    stripe_sandbox.advance_clock(25 * 3600)
    stripe_sandbox.expire_idempotency_keys()
    with connect() as conn:  # the key was recorded a day ago
        conn.execute("UPDATE closeout_data.stripe_outbox SET created_at = created_at - interval '25 hours'")

    credit_notes.issue_corrections("a-day-later", None)
    (note,) = _credit_notes(stripe_sandbox, sid)
    assert warehouse.rows("SELECT resolved_by FROM closeout.stripe_outbox WHERE operation = 'credit_note.create'") == [
        ("metadata_lookup",)
    ]
    assert warehouse.rows("SELECT state, credit_note_id FROM closeout.corrections") == [("issued", note["id"])]
    _invariants()


def test_a_written_off_invoice_is_still_credited_and_the_write_off_keeps_working(warehouse, stripe_sandbox) -> None:
    import stripe

    invoice_id, sid = _publish()
    # finance writes the invoice off in Stripe; closeout follows through the events, as before
    client = stripe.StripeClient(stripe_sandbox.secret_key, base_addresses={"api": stripe_sandbox.url})
    client.v1.invoices.mark_uncollectible(sid)
    tasks.collect_events("events")
    tasks.apply_events("events")
    assert warehouse.scalar("SELECT status FROM closeout.invoices WHERE invoice_id = %s", (invoice_id,)) == (
        "uncollectible"
    )
    _change(_edited("1", D("4")))  # 10 h -> 4 h: 600.00 less

    credit_notes.issue_corrections("written-off", None)
    (note,) = _credit_notes(stripe_sandbox, sid)
    assert (note["amount"], note["pre_payment_amount"]) == (60000, 60000)
    invoice = stripe_sandbox.get(sid)
    assert invoice["status"] == "uncollectible" and invoice["amount_remaining"] == 60000
    assert warehouse.scalar("SELECT status FROM closeout.invoices WHERE invoice_id = %s", (invoice_id,)) == (
        "uncollectible"
    )
    _invariants()
    check_invariant_3(warehouse, stripe_sandbox)


def test_a_draft_that_nets_negative_becomes_a_customer_balance_credit_once_its_period_is_over(
    warehouse, stripe_sandbox
) -> None:
    # entry 1 billed on two issued invoices: 10 h on the month before last, +2 h on last month's
    two_months_ago = (last_month() - timedelta(days=1)).replace(day=1)
    day = two_months_ago + timedelta(days=4)
    with connect() as conn:
        books = Books(conn)
        client = {"client_key": CLIENT, "name": "Client A", "email": "ap@a.example", "currency": "USD",
                  "grouping": "entry"}  # fmt: skip
        books.configure({"defaults": {"require_approval": False}, "clients": [client]})
        books.put(Entry("1", client="a", hours=D("10"), spent_date=day))
        books.draft()
        conn.commit()
    tasks.publish_drafts("first")
    _change(Entry("1", client="a", hours=D("12"), spent_date=day))
    tasks.publish_drafts("second")
    assert warehouse.rows("SELECT status, total_minor FROM closeout.invoices ORDER BY period_start") == [
        ("open", 100000), ("open", 20000)]  # fmt: skip
    customer = warehouse.scalar("SELECT stripe_customer_id FROM closeout_data.stripe_customers")

    # 12 h at 100 -> 1 h at 50: a decrease over two rates (-1,200.00 and +50.00) that neither invoice covers
    # alone is not split; it waits on this month's draft
    _change(Entry("1", client="a", hours=D("1"), rate=D("50"), spent_date=day))
    this_month = warehouse.scalar("SELECT invoice_id FROM closeout.invoices WHERE status = 'draft'")
    assert warehouse.scalar("SELECT total_minor FROM closeout.invoices WHERE invoice_id = %s", (this_month,)) == -115000

    waiting = credit_notes.issue_corrections("this-month", None)
    assert waiting["recorded"]["customer_balance_credits"] == 0, "this month is not over: the draft may still change"
    next_month = (date.today().replace(day=1) + timedelta(days=32)).replace(day=2)
    result = credit_notes.issue_corrections("month-over", next_month)
    assert result["issued"]["customer_balance_credits"] == 1
    assert stripe_sandbox.get(customer)["balance"] == -115000
    (txn,) = [t for t in stripe_sandbox.objects("customer_balance_transaction") if t["customer"] == customer]
    assert txn["amount"] == -115000 and txn["currency"] == "usd"
    (correction_id,) = warehouse.rows("SELECT correction_id FROM closeout.corrections")[0]
    assert txn["metadata"]["closeout_correction_id"] == correction_id
    assert warehouse.rows("SELECT kind, invoice_id, amount_minor, state, credit_note_id FROM closeout.corrections") == [
        ("customer_balance", None, 115000, "issued", txn["id"])]  # fmt: skip
    assert warehouse.rows("SELECT total_minor, line_count FROM closeout.invoices WHERE invoice_id = %s",
                          (this_month,)) == [(0, 0)], "nothing left to sit unpublished"  # fmt: skip
    assert not stripe_sandbox.objects("credit_note")
    _invariants()

    mutations = stripe_sandbox.stats()["mutations"]
    credit_notes.issue_corrections("rerun", next_month)
    assert stripe_sandbox.stats()["mutations"] == mutations, "a rerun with nothing new sends nothing"


def test_a_credit_note_stripe_refuses_stops_until_a_person_resolves_it_then_is_issued(
    warehouse, stripe_sandbox
) -> None:
    from closeout.payments import exceptions

    invoice_id, sid = _publish()
    # someone credited 1,000.00 of the 1,200.00 invoice by hand in the Dashboard: 200.00 is left to credit
    by_hand = stripe_sandbox.dashboard_credit_note(sid, amount=100000)
    _change(_edited("1", D("7.5")))  # ours: 250.00, more than Stripe lets anyone credit now
    with pytest.raises(credit_notes.CorrectionsStopped):
        credit_notes.issue_corrections("refused", None)
    assert _credit_notes(stripe_sandbox, sid) == [stripe_sandbox.get(by_hand["id"])]
    assert warehouse.rows("SELECT state FROM closeout.corrections") == [("stopped",)]
    (exception_id, kind) = warehouse.rows(
        "SELECT exception_id, kind FROM closeout.payment_exceptions WHERE invoice_id = %s AND resolved_at IS NULL",
        (invoice_id,),
    )[0]
    assert kind == "correction_refused"
    # nothing is tried again until a person acts (the alert went out with the first refusal)
    requests = stripe_sandbox.stats()["requests"]
    again = credit_notes.issue_corrections("still-refused", None)
    assert again["issued"]["stopped"] == 0 and stripe_sandbox.stats()["requests"] == requests
    assert warehouse.rows("SELECT state FROM closeout.corrections") == [("stopped",)]

    # finance voids the hand-made note and resolves the exception: the next run issues ours
    stripe_sandbox.void_credit_note(by_hand["id"])
    with connect() as conn:
        exceptions.resolve(conn, exception_id, resolved_by="finance@example", resolution="voided the manual credit")
        conn.commit()
    result = credit_notes.issue_corrections("resumed", None)
    assert result["issued"]["resumed"] == 1 and result["issued"]["credit_notes_issued"] == 1
    issued = [n for n in _credit_notes(stripe_sandbox, sid) if n["status"] == "issued"]
    assert [(n["amount"], n["metadata"]["closeout_invoice_id"]) for n in issued] == [(25000, invoice_id)]
    assert stripe_sandbox.get(sid)["amount_remaining"] == 95000
    assert warehouse.rows("SELECT state, amount_minor FROM closeout.corrections") == [("issued", 25000)]
    _invariants()


def test_a_recorded_credit_note_stripe_refuses_on_retry_is_resumed_under_a_new_key(warehouse, stripe_sandbox) -> None:
    from closeout.payments import exceptions

    invoice_id, sid = _publish()
    _change(_edited("1", D("7.5")))
    # the preview passes, the create never reaches Stripe (connection dropped): recorded, pending
    stripe_sandbox.inject("drop", path_prefix="/v1/credit_notes", after=1)
    with pytest.raises(credit_notes.CorrectionsIncomplete):
        credit_notes.issue_corrections("dropped", None)
    assert not _credit_notes(stripe_sandbox, sid)
    # meanwhile someone credits most of the invoice by hand: the recorded request no longer fits
    by_hand = stripe_sandbox.dashboard_credit_note(sid, amount=100000)
    with pytest.raises(credit_notes.CorrectionsStopped):
        credit_notes.issue_corrections("refused", None)
    outbox = "SELECT idempotency_key, status FROM closeout.stripe_outbox WHERE operation = 'credit_note.create'"
    ((first_key, status),) = warehouse.rows(outbox)
    assert status == "failed"
    (exception_id,) = warehouse.rows(
        "SELECT exception_id FROM closeout.payment_exceptions WHERE kind = 'correction_refused' AND resolved_at IS NULL"
    )[0]

    stripe_sandbox.void_credit_note(by_hand["id"])
    with connect() as conn:
        exceptions.resolve(conn, exception_id, resolved_by="finance@example", resolution="voided the manual credit")
        conn.commit()
    credit_notes.issue_corrections("resumed", None)
    keys = dict(warehouse.rows(outbox))
    assert keys == {first_key: "failed", f"{first_key}/r1": "done"}, "the refusal stays under its key"
    issued = [n for n in _credit_notes(stripe_sandbox, sid) if n["status"] == "issued"]
    assert [n["amount"] for n in issued] == [25000]
    assert warehouse.rows("SELECT state, invoice_id FROM closeout.corrections") == [("issued", invoice_id)]
    _invariants()
