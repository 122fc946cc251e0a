"""closeout_tracker_writeback marks in Clockify exactly the entries closeout billed, after a real chain: entries
synced by closeout_sync_clockify, drafted, published to the Stripe sandbox. Work not billed (this month's, still
drafting) stays uninvoiced; batches are used; a rerun writes nothing; the next sync captures the flag."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from conftest import set_conn_extra
from payments_support import last_month

from sandbox.clockify import generate_dataset

pytestmark = pytest.mark.integration


def _invoiced(clockify) -> set[str]:
    return {e["id"] for e in clockify.entries_snapshot() if e.get("invoicingState") == "INVOICED"}


def test_exactly_the_billed_entries_are_marked_invoiced_in_batches_and_a_rerun_writes_nothing(
    warehouse, clockify, stripe_sandbox, run_dag, monkeypatch, tmp_path
) -> None:
    clockify.load(generate_dataset(0, seed=1, anchor=date.today(), days=20))
    set_conn_extra(monkeypatch, "clockify_default", workspace_id=clockify.workspace_id)
    project = next(iter(clockify._projects.values()))
    user = project["memberships"][0]["userId"]

    def work(day: date, hours: int) -> str:
        start = datetime.combine(day, time(9), tzinfo=UTC)
        return clockify.create_entry(userId=user, projectId=project["id"], billable=True, start=start,
                                     end=start + timedelta(hours=hours), approvalState="APPROVED",
                                     hourlyRate={"amount": 12000, "currency": "USD"})["id"]  # fmt: skip

    billed = [work(last_month() + timedelta(days=n), 1 + n % 3) for n in range(5)]
    current = work(date.today().replace(day=1), 2)  # this month: drafted, not issued, not billed yet
    config = tmp_path / "clients.yaml"
    config.write_text("defaults:\n  require_approval: false\nclients:\n"
                      f'  - client_key: "clockify:{project["clientId"]}"\n    name: Soylent\n    currency: USD\n'
                      "    grouping: project\n    email: ap@soylent.example\n")
    monkeypatch.setenv("CLOSEOUT_BILLING_CONFIG", str(config))
    monkeypatch.setenv("CLOSEOUT_CLOCKIFY_INVOICED_BATCH", "2")
    for dag_id in ("closeout_sync_clockify", "closeout_invoice_drafts", "closeout_stripe_publish"):
        assert run_dag(dag_id).state == "success", dag_id
    [(invoice_id,)] = warehouse.rows("SELECT invoice_id FROM closeout.invoices WHERE status = 'open'")

    clockify.reset_stats()
    assert run_dag("closeout_tracker_writeback").state == "success"
    assert _invoiced(clockify) == set(billed) and current not in _invoiced(clockify)
    patches = [r for r in clockify.stats()["log"] if r[0] == "PATCH"]
    assert len(patches) == 3 and all(r[2] == 200 for r in patches), "5 entries in batches of 2"
    rows = warehouse.rows("SELECT source, object_kind, closeout_ref, status, response FROM closeout.tracker_writebacks")
    assert rows == [("clockify", "invoiced_flag", invoice_id, "done", {"entries": 5, "batches": 3})]

    clockify.reset_stats()
    assert run_dag("closeout_tracker_writeback").state == "success"
    assert [r for r in clockify.stats()["log"] if r[0] != "GET" and "reports" not in r[1]] == []

    assert run_dag("closeout_sync_clockify", {"sweep": "always"}).state == "success"  # re-reads last month
    assert dict(warehouse.rows(
        "SELECT source_id, billed_in_source FROM closeout.time_entry_versions v WHERE source = 'clockify' "
        "AND version = (SELECT max(version) FROM closeout.time_entry_versions w "
        "WHERE w.source = v.source AND w.source_id = v.source_id)")) == {**dict.fromkeys(billed, True), current: False}
    # closeout's own invoiced flag, read back by the sync, is not "billed by someone else": the next drafting run
    # leaves the issued invoice's entries billed (no credit for them) and drafts nothing new for them
    lines = "SELECT invoice_id, line_no, kind, amount_minor FROM closeout.invoice_lines ORDER BY 1, 2"
    lines_before = warehouse.rows(lines)
    assert run_dag("closeout_invoice_drafts").state == "success"
    assert warehouse.rows(lines) == lines_before
    assert warehouse.scalar(
        "SELECT count(*) FROM closeout.invoice_lines WHERE kind IN ('adjustment', 'credit')") == 0
