"""A Harvest write-back killed (SIGKILL, closeout.faults) between recording its intent and recording the answer:
the next run ends with exactly one Harvest invoice. Before the call nothing reached Harvest, so it is created once;
after the call Harvest holds it, so it is found by its number and never created again. The killed worker is a
child process running the DAG task's function, as a worker would."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "crash"))
from crash_support import die_at
from writeback_support import CLIENT, add_work, bill_config, issue, writebacks

pytestmark = pytest.mark.integration

WRITEBACK_POINTS = ["tracker.harvest.invoice.before_call", "tracker.harvest.invoice.after_call"]
WRITEBACK = "from closeout.writeback import tasks; tasks.writeback_harvest()"


@pytest.mark.parametrize("point", WRITEBACK_POINTS)
def test_a_writeback_killed_between_intent_and_record_ends_with_one_harvest_invoice(
    warehouse, harvest, stripe_sandbox, run_dag, monkeypatch, tmp_path, point: str
) -> None:
    bill_config(tmp_path, monkeypatch, {CLIENT: "USD"})
    ids = add_work(harvest, [1.0, 2.0])
    issue(run_dag)
    die_at(point, WRITEBACK)
    assert [r[4] for r in writebacks(warehouse, "invoice")] == ["sent"], "the intent was committed before the call"
    assert len(harvest.invoices.snapshot()) == (1 if point.endswith("after_call") else 0)

    assert run_dag("closeout_tracker_writeback").state == "success"
    [mirror] = harvest.invoices.snapshot()
    assert {e["id"] for e in harvest.entries_snapshot() if e["is_billed"]} == set(ids)
    [(_, _, _, external_id, status, method, _)] = writebacks(warehouse, "invoice")
    assert (external_id, status) == (str(mirror["id"]), "done")
    events = [e[0] for e in warehouse.rows("SELECT event FROM closeout.tracker_writeback_events")]
    if point.endswith("after_call"):
        assert method == "lookup" and events == ["found_after_lost_answer"]
    else:
        assert method == "import" and events == []
    assert mirror["state"] == "open"
    assert run_dag("closeout_tracker_writeback").state == "success"
    assert len(harvest.invoices.snapshot()) == 1


def test_a_failed_invoice_call_fails_the_task_and_the_retry_looks_it_up_before_creating_it_once(
    warehouse, harvest, stripe_sandbox, run_dag, monkeypatch, tmp_path
) -> None:
    bill_config(tmp_path, monkeypatch, {CLIENT: "USD"})
    ids = add_work(harvest, [1.5])
    issue(run_dag)
    # the run's first /v2/invoices call (the listing) passes; the POST that creates the invoice gets a 503
    harvest.inject_fault("5xx", path_prefix="/v2/invoices", after=1)
    result = run_dag("closeout_tracker_writeback")
    assert result.state == "success" and result.tries["harvest"] == 2, result
    posts = [t for m, t, s in harvest.stats()["log"] if m == "POST" and t.startswith("/v2/invoices")]
    assert len(posts) == 3, "the refused create, the create after the lookup found nothing, the send message"
    [mirror] = harvest.invoices.snapshot()
    assert {e["id"] for e in harvest.entries_snapshot() if e["is_billed"]} == set(ids)
    [(_, _, _, external_id, status, method, _)] = writebacks(warehouse, "invoice")
    assert (external_id, status, method) == (str(mirror["id"]), "done", "import")


def test_a_payment_whose_answer_was_lost_is_found_by_its_notes_and_not_recorded_twice(
    warehouse, harvest, stripe_sandbox, run_dag, monkeypatch, tmp_path
) -> None:
    from closeout.warehouse.db import connect
    from closeout.writeback import records
    from closeout.writeback.harvest_api import HarvestWriter
    from writeback_support import pay_all

    bill_config(tmp_path, monkeypatch, {CLIENT: "USD"})
    add_work(harvest, [2.0])
    issue(run_dag)
    assert run_dag("closeout_tracker_writeback").state == "success"
    pay_all(stripe_sandbox, warehouse, run_dag)
    [(payment_ref, invoice_id, amount)] = warehouse.rows(
        "SELECT payment_ref, invoice_id, amount_minor FROM closeout.invoice_payments WHERE kind = 'payment'")
    [mirror] = harvest.invoices.snapshot()
    # what a worker killed after Harvest recorded the payment leaves: the row 'sent', the payment in Harvest
    with connect() as conn:
        row = records.plan(conn, source="harvest", object_kind="payment", closeout_ref=payment_ref,
                           invoice_id=invoice_id, writeback_key=f"Stripe payment {payment_ref}")  # fmt: skip
        records.mark_sent(conn, row, method="payment", request={"amount_minor": amount})
    HarvestWriter().write("POST", f"invoices/{mirror['id']}/payments",
                          {"amount": str(amount / 100), "notes": f"Stripe payment {payment_ref} (closeout)"})

    assert run_dag("closeout_tracker_writeback").state == "success"
    [payment] = harvest.invoices.payments(mirror["id"])
    assert warehouse.rows("SELECT external_id, status, method FROM closeout.tracker_writebacks "
                          "WHERE object_kind = 'payment'") == [(str(payment["id"]), "done", "lookup")]  # fmt: skip
    assert harvest.invoices.get(mirror["id"])["state"] == "paid"



def test_a_send_message_whose_answer_was_lost_is_resolved_from_the_invoice_state_and_not_sent_again(
    warehouse, harvest, stripe_sandbox, run_dag, monkeypatch, tmp_path
) -> None:
    from closeout.warehouse.db import connect
    from closeout.writeback.harvest_api import HarvestWriter

    bill_config(tmp_path, monkeypatch, {CLIENT: "USD"})
    add_work(harvest, [2.0])
    issue(run_dag)
    assert run_dag("closeout_tracker_writeback").state == "success"
    [mirror] = harvest.invoices.snapshot()
    with connect() as conn:  # as a worker killed after Harvest took the send event leaves it
        conn.execute("UPDATE closeout_data.tracker_writebacks SET status = 'sent', completed_at = NULL "
                     "WHERE object_kind = 'message'")  # fmt: skip
        conn.commit()
    assert run_dag("closeout_tracker_writeback").state == "success"
    messages = HarvestWriter().nested_listing(f"invoices/{mirror['id']}/messages", "invoice_messages")
    assert [m["event_type"] for m in messages] == ["send"]
    assert warehouse.rows("SELECT status, method FROM closeout.tracker_writebacks WHERE object_kind = 'message'") \
        == [("done", "lookup")]
