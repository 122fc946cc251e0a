"""closeout_stripe_publish against the Stripe sandbox through the real SDK, on the real warehouse, in real
DAG runs: each draft becomes exactly one Stripe invoice with the same total (invariant 3), across
timeouts after commit, a task killed between Stripe's answer and our commit, keys older than Stripe keeps
them, lost customer records, totals changed behind our back and amounts Stripe cannot represent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from decimal import Decimal as D

import pytest
from closeout.payments import tasks
from closeout.payments.publish import PublishIncomplete
from closeout.warehouse.db import connect
from conftest import ROOT, set_conn_extra
from payments_support import check_invariant_3, last_month, published, seed_drafts

pytestmark = pytest.mark.integration

THREE = {"a": [D("1.5"), D("2")], "b": [D("3")], "c": [D("0.25"), D("4"), D("1")]}


def _mutations(sandbox) -> int:
    return sandbox.stats()["mutations"]


def test_each_draft_becomes_one_finalized_stripe_invoice_and_a_rerun_sends_nothing(
    warehouse, stripe_sandbox, run_dag
) -> None:
    ids = seed_drafts(THREE)
    result = run_dag("closeout_stripe_publish")
    assert result.state == "success", result

    rows = warehouse.rows(
        """SELECT i.invoice_id, i.status, i.total_minor, i.stripe_invoice_id, i.stripe_number, i.hosted_invoice_url,
                  i.hosted_invoice_url_expires_at, p.state, p.due_date
           FROM closeout.invoices i JOIN closeout.stripe_publications p USING (invoice_id) ORDER BY i.invoice_id"""
    )
    assert sorted(r[0] for r in rows) == sorted(ids)
    for invoice_id, status, total, sid, number, url, expires, state, due in rows:
        assert (status, state) == ("open", "finalized"), invoice_id
        stripe_invoice = stripe_sandbox.get(sid)
        assert stripe_invoice["status"] == "open" and stripe_invoice["total"] == total
        assert stripe_invoice["metadata"]["closeout_invoice_id"] == invoice_id
        assert number == stripe_invoice["number"] and url == stripe_invoice["hosted_invoice_url"]
        assert expires is not None and due is not None
        lines = warehouse.scalar("SELECT count(*) FROM closeout.invoice_lines WHERE invoice_id = %s", (invoice_id,))
        assert len([ln for ln in stripe_sandbox.objects("line_item") if ln["invoice"] == sid]) == lines
    assert stripe_sandbox.count("customer") == 3 and stripe_sandbox.count("invoice") == 3
    assert warehouse.scalar("SELECT count(*) FROM closeout.stripe_outbox WHERE status <> 'done'") == 0
    assert warehouse.rows("SELECT DISTINCT to_status, via FROM closeout.invoice_status_history") == [
        ("open", "publish")
    ]
    check_invariant_3(warehouse, stripe_sandbox)

    before = _mutations(stripe_sandbox)
    assert run_dag("closeout_stripe_publish").state == "success"
    assert _mutations(stripe_sandbox) == before, "a rerun with nothing new sends nothing"
    check_invariant_3(warehouse, stripe_sandbox)


@pytest.mark.parametrize("operation, after", [("create", 0), ("finalize", 2)])
def test_timeout_after_commit_then_retry_makes_exactly_one_invoice(
    warehouse, stripe_sandbox, run_dag, operation: str, after: int
) -> None:
    seed_drafts({"a": [D("2")]})
    # the request reaches Stripe and is committed there; the answer never comes back (client timeout 5 s)
    stripe_sandbox.inject("timeout_after_commit", path_prefix="/v1/invoices", after=after, delay=8)
    result = run_dag("closeout_stripe_publish")
    assert result.state == "success", result
    assert result.tries["publish_drafts"] == 2, "the first attempt timed out, Airflow's retry finished the job"
    assert stripe_sandbox.count("invoice") == 1
    key_row = warehouse.rows(
        "SELECT resolved_by, attempts FROM closeout.stripe_outbox WHERE operation = %s", (f"invoice.{operation}",)
    )
    assert key_row == [("replay", 2)], "the retry reused the recorded key and Stripe replayed its answer"
    assert stripe_sandbox.stats()["replays"] >= 1
    check_invariant_3(warehouse, stripe_sandbox)


def test_a_task_killed_between_the_stripe_call_and_our_commit_is_retried_without_a_duplicate(
    warehouse, stripe_sandbox, run_dag, monkeypatch
) -> None:
    seed_drafts({"a": [D("2")], "b": [D("1")]})
    set_conn_extra(monkeypatch, "stripe_default", timeout=60)
    # Stripe creates the invoice, then holds the answer; we kill the worker while it waits for it
    stripe_sandbox.inject("timeout_after_commit", path_prefix="/v1/invoices", delay=30)
    worker = subprocess.Popen(
        [sys.executable, "-c", "from closeout.payments import tasks; tasks.publish_drafts('killed-run')"],
        env=dict(os.environ), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while stripe_sandbox.count("invoice") == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stripe_sandbox.count("invoice") >= 1, "the worker never reached Stripe"
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)
    assert warehouse.scalar("SELECT count(*) FROM closeout.stripe_outbox WHERE stripe_object_id IS NOT NULL "
                            "AND operation = 'invoice.create'") == 0, "our commit never happened"  # fmt: skip

    set_conn_extra(monkeypatch, "stripe_default", timeout=5)
    assert run_dag("closeout_stripe_publish").state == "success"
    assert stripe_sandbox.count("invoice") == 2
    assert warehouse.scalar("SELECT count(*) FROM closeout.stripe_publications WHERE state = 'finalized'") == 2
    check_invariant_3(warehouse, stripe_sandbox)


def test_a_key_older_than_stripe_keeps_it_is_resolved_by_metadata_not_by_a_second_invoice(
    warehouse, stripe_sandbox, run_dag
) -> None:
    seed_drafts({"a": [D("2")]})
    stripe_sandbox.inject("timeout_after_commit", path_prefix="/v1/invoices", delay=8)
    with pytest.raises(PublishIncomplete):
        tasks.publish_drafts("first-attempt")
    assert stripe_sandbox.count("invoice") == 1
    # a day passes: Stripe forgets the key, and our pending outbox row is as old
    stripe_sandbox.advance_clock(25 * 3600)
    stripe_sandbox.expire_idempotency_keys()
    with connect() as conn:
        conn.execute("UPDATE closeout_data.stripe_outbox SET created_at = created_at - interval '25 hours'")
        conn.commit()

    assert run_dag("closeout_stripe_publish").state == "success"
    assert stripe_sandbox.count("invoice") == 1, "the lost answer was found by metadata, not created again"
    assert warehouse.rows("SELECT resolved_by FROM closeout.stripe_outbox WHERE operation = 'invoice.create'") == [
        ("metadata_lookup",)
    ]
    check_invariant_3(warehouse, stripe_sandbox)


def test_a_lost_customer_record_is_found_again_by_metadata(warehouse, stripe_sandbox) -> None:
    seed_drafts({"a": [D("2")]}, period=(last_month() - timedelta(days=1)).replace(day=1))
    tasks.publish_drafts("earlier-month")
    with connect() as conn:
        conn.execute("DELETE FROM closeout_data.stripe_customers")  # our record is lost
        conn.commit()
    seed_drafts({"a": [D("3")]}, first_id=100)
    tasks.publish_drafts("this-month")
    assert stripe_sandbox.count("customer") == 1
    assert warehouse.rows("SELECT found_by FROM closeout_data.stripe_customers") == [("metadata_lookup",)]
    assert stripe_sandbox.count("invoice") == 2
    check_invariant_3(warehouse, stripe_sandbox)


def test_a_stripe_total_that_differs_stops_that_invoice_only(warehouse, stripe_sandbox, run_dag) -> None:
    a, b = seed_drafts({"a": [D("2")], "b": [D("1")]})
    # both finalizations fail once, after the lines are on Stripe: the drafts wait there
    stripe_sandbox.inject("error_500", path_prefix="/v1/invoices/", after=2, times=2)
    with pytest.raises(PublishIncomplete):
        tasks.publish_drafts("first-attempt")
    sid_a = warehouse.scalar("SELECT stripe_invoice_id FROM closeout.invoices WHERE invoice_id = %s", (a,))
    stripe_sandbox.tamper_invoice_total(sid_a, 12_345)  # someone edits the Stripe draft

    result = run_dag("closeout_stripe_publish")
    assert result.state == "failed" and result.tries["publish_drafts"] == 1, "a stop fails the run once, no retry"
    assert warehouse.rows("SELECT invoice_id, state FROM closeout.stripe_publications ORDER BY state") == sorted(
        [(b, "finalized"), (a, "stopped")], key=lambda r: r[1]
    )
    exception = warehouse.rows(
        "SELECT invoice_id, kind, our_total_minor, stripe_total_minor, currency FROM closeout.payment_exceptions"
    )
    assert exception == [(a, "total_mismatch", 20_000, 12_345, "USD")]
    assert stripe_sandbox.get(sid_a)["status"] == "draft", "never finalized"
    assert published(warehouse)[a][0] == "publishing"

    # the next hourly run is quiet: same cause, no new failure
    assert run_dag("closeout_stripe_publish").state == "success"
    check_invariant_3(warehouse, stripe_sandbox)


def test_amounts_stripe_cannot_take_stop_before_any_call(warehouse, stripe_sandbox) -> None:
    seed_drafts({"k": [D("1.333")]}, currency="KWD", rate=D("1.001"))  # 1.334 KWD: 1334 fils, not a multiple of 10
    with pytest.raises(Exception, match="stopped"):
        tasks.publish_drafts("kwd")
    assert _mutations(stripe_sandbox) == 0
    assert warehouse.rows("SELECT kind, currency FROM closeout.payment_exceptions") == [("amount_precision", "KWD")]
