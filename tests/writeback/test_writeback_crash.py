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
