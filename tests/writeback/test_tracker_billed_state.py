"""The tracker_billed_state reconciliation check (GX suite closeout_tracker_billed_state) on a real chain: green
after the write-back and the next sync; failing one way when Harvest no longer shows closeout's entries billed
(an invoice deleted there by hand), green again once the write-back re-mirrored it; failing the other way when
someone bills an entry in Harvest that closeout did not bill; recorded gaps reported, not failing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from closeout.recon.checks import CHECKS
from closeout.recon.runner import run_reconciliation
from closeout.warehouse.db import connect
from payments_support import last_month
from writeback_support import CLIENT, add_work, bill_config, issue

pytestmark = pytest.mark.integration

CHECK = next(c for c in CHECKS if c.name == "tracker_billed_state")


def _judge(tmp_path) -> tuple[str, list[tuple[str, str, int]]]:
    """Run the check alone: its status and its difference rows (kind, item, difference)."""
    with connect() as conn:
        result = run_reconciliation(conn, data_docs_dir=tmp_path / "docs", checks=(CHECK,))
        [verdict] = result.checks
        rows = conn.execute("SELECT kind, item, difference_minor FROM closeout_data.recon_differences "
                            "WHERE run_id = %s ORDER BY kind, item", (result.run_id,)).fetchall()  # fmt: skip
    return verdict.status, rows


def test_green_after_writeback_and_failing_both_ways(warehouse, harvest, stripe_sandbox, run_dag, monkeypatch,
                                                      tmp_path) -> None:  # fmt: skip
    bill_config(tmp_path, monkeypatch, {CLIENT: "USD"})
    ids = add_work(harvest, [1.0, 2.0, 0.5])
    issue(run_dag)
    with connect() as conn:
        assert CHECK.not_applicable(conn), "nothing written back yet: not applicable"
    assert run_dag("closeout_tracker_writeback").state == "success"
    assert run_dag("closeout_sync_harvest").state == "success"
    assert _judge(tmp_path) == ("passed", [])

    # the reverse: closeout billed and wrote back, Harvest no longer shows them billed
    [mirror] = harvest.invoices.snapshot()
    harvest.invoices.delete(mirror["id"])
    assert run_dag("closeout_sync_harvest").state == "success"
    status, rows = _judge(tmp_path)
    amounts = dict(warehouse.rows("SELECT source_id, amount_minor FROM closeout.time_entries"))
    assert status == "failed"
    assert rows == sorted(("not_in_tracker", f"harvest time {i}", -amounts[str(i)]) for i in ids)

    assert run_dag("closeout_tracker_writeback").state == "success"  # mirrored again (once)
    assert run_dag("closeout_sync_harvest").state == "success"
    assert _judge(tmp_path) == ("passed", [])

    # one way: someone bills in Harvest an entry closeout never billed
    [stray] = add_work(harvest, [3.0], first_day=last_month() + timedelta(days=10))
    harvest.update_entry(stray, is_billed=True)
    assert run_dag("closeout_sync_harvest").state == "success"
    status, rows = _judge(tmp_path)
    [(kind, item, difference)] = rows
    assert status == "failed" and kind == "tracker_only" and item.startswith(f"harvest time {stray} ")
    assert difference == warehouse.scalar("SELECT amount_minor FROM closeout.time_entries WHERE source_id = %s",
                                          (str(stray),))  # fmt: skip


def test_recorded_gaps_are_reported_as_such_and_do_not_fail(warehouse, harvest, stripe_sandbox, run_dag,
                                                              monkeypatch, tmp_path) -> None:  # fmt: skip
    bill_config(tmp_path, monkeypatch, {CLIENT: "USD"})
    ids = add_work(harvest, [1.0, 2.0])
    issue(run_dag)
    add_work(harvest, [4.0], first_day=last_month() + timedelta(days=1))  # late: the import would bill it too
    assert run_dag("closeout_tracker_writeback").state == "success"
    assert run_dag("closeout_sync_harvest").state == "success"
    [(invoice_id,)] = warehouse.rows("SELECT invoice_id FROM closeout.invoices WHERE status = 'open'")
    status, rows = _judge(tmp_path)
    assert status == "passed"
    assert rows == sorted(("gap", f"harvest time {i} (recorded gap on {invoice_id})", 0) for i in ids)
