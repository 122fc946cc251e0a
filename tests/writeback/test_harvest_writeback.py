"""closeout_tracker_writeback against the Harvest sandbox after a real chain (sync -> drafts -> publish to the
Stripe sandbox -> payment -> events), run with dag.test on real Postgres: Harvest ends showing as billed exactly
what closeout billed, the invoice sent and paid, and a rerun writes nothing."""

from __future__ import annotations

from decimal import Decimal

import pytest
from writeback_support import CLIENT, PROJECT, add_work, bill_config, harvest_writes, issue, pay_all, writebacks

pytestmark = pytest.mark.integration


def _billed_ids(harvest) -> set[int]:
    return {e["id"] for e in harvest.entries_snapshot() if e["is_billed"]}


def test_an_issued_and_paid_invoice_is_mirrored_by_import_sent_paid_and_a_rerun_writes_nothing(
    warehouse, harvest, stripe_sandbox, run_dag, monkeypatch, tmp_path
) -> None:
    bill_config(tmp_path, monkeypatch, {CLIENT: "USD"})
    ids = add_work(harvest, [2.0, 1.5, 3.25])
    issue(run_dag)
    [(invoice_id, total, number)] = warehouse.rows(
        "SELECT invoice_id, total_minor, stripe_number FROM closeout.invoices WHERE status = 'open'")
    assert _billed_ids(harvest) == set(), "nothing is billed in Harvest before the write-back"

    result = run_dag("closeout_tracker_writeback")
    assert result.state == "success", result
    [mirror] = harvest.invoices.snapshot()
    assert mirror["number"] == number and mirror["client"]["id"] == CLIENT
    assert Decimal(str(mirror["amount"])) * 100 == total, "the Harvest invoice totals what closeout billed"
    assert mirror["state"] == "open" and mirror["sent_at"], "marked sent by a send event"
    assert _billed_ids(harvest) == set(ids), "exactly closeout's entries are billed in Harvest"
    assert {e["invoice"]["id"] for e in harvest.entries_snapshot() if e["is_billed"]} == {mirror["id"]}
    assert writebacks(warehouse) == [
        ("harvest", "invoice", invoice_id, str(mirror["id"]), "done", "import", None),
        ("harvest", "message", f"{invoice_id}/send", writebacks(warehouse, "message")[0][3], "done", "message",
         None),
    ]

    # the client pays in Stripe; the payment reaches Harvest
    pay_all(stripe_sandbox, warehouse, run_dag)
    assert run_dag("closeout_tracker_writeback").state == "success"
    [payment] = harvest.invoices.payments(mirror["id"])
    assert Decimal(str(payment["amount"])) * 100 == total
    assert harvest.invoices.get(mirror["id"])["state"] == "paid"
    [(_kind, ref, status)] = warehouse.rows(
        "SELECT object_kind, closeout_ref, status FROM closeout.tracker_writebacks WHERE object_kind = 'payment'")
    assert status == "done" and ref in payment["notes"]

    # nothing new: a rerun makes no write at all
    before = harvest_writes(harvest)
    assert run_dag("closeout_tracker_writeback").state == "success"
    assert harvest_writes(harvest) == before
    assert len(harvest.invoices.snapshot()) == 1 and len(harvest.invoices.payments(mirror["id"])) == 1
    assert PROJECT in {li["project"]["id"] for li in mirror["line_items"]}
