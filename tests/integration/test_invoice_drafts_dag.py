"""closeout_invoice_drafts end to end: real Airflow (dag.test), real Postgres, entries synced from the
Harvest sandbox by closeout_sync_harvest, billing configured by a YAML file.

The worked example of the README: an invoice is published (frozen), the entry is edited in Harvest
afterwards, the next sync and drafting run turn the edit into an adjustment line on the client's next
draft, linked to the original line; the published invoice does not change."""

from __future__ import annotations

from datetime import date

import pytest
from billing_support import check_invariants
from closeout.billing import lifecycle
from closeout.warehouse.db import connect

from sandbox.harvest import generate_dataset

pytestmark = pytest.mark.integration


def test_drafts_follow_syncs_and_edits_after_publication_become_adjustments(
    warehouse, harvest, run_dag, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    harvest.load(generate_dataset(300, seed=5, anchor=date.today(), days=75))
    client_id = harvest.entries_snapshot()[0]["client"]["id"]
    currency = harvest.entries_snapshot()[0]["client"]["currency"]
    config = tmp_path / "clients.yaml"
    config.write_text(
        f"""defaults:
  require_approval: false
clients:
  - client_key: "harvest:{client_id}"
    name: First client
    currency: {currency}
    grouping: project
"""
    )
    monkeypatch.setenv("CLOSEOUT_BILLING_CONFIG", str(config))
    assert run_dag("closeout_sync_harvest").state == "success"
    result = run_dag("closeout_invoice_drafts")
    assert result.state == "success", result

    invoices = warehouse.rows("SELECT invoice_id, client_key, status, total_minor FROM closeout.invoices")
    assert invoices and all(status == "draft" for _, _, status, _ in invoices)
    grouped = warehouse.rows(
        """SELECT DISTINCT split_part(l.line_key, '|', 2) FROM closeout.invoice_lines l
           JOIN closeout.invoices i USING (invoice_id) WHERE i.client_key = %s""",
        (f"harvest:{client_id}",),
    )
    assert grouped == [("p",)], "the configured client is billed one line per project"
    assert warehouse.rows("SELECT name FROM closeout.billing_clients WHERE client_key <> '*'") == [("First client",)]
    with connect() as conn:
        check_invariants(conn)

    # publish (freeze) a draft of a finished period, then edit one of its entries in Harvest
    with connect() as conn:
        invoice_id, entry_id, hours = conn.execute(
            """SELECT i.invoice_id, e.source_id, t.hours
               FROM closeout.invoices i
               JOIN closeout.invoice_line_entries e USING (invoice_id)
               JOIN closeout.time_entries t ON t.source = e.source AND t.source_id = e.source_id
               WHERE i.period_end < date_trunc('month', current_date) AND i.total_minor > 0
               ORDER BY i.period_start, i.invoice_id, e.source_id LIMIT 1"""
        ).fetchone()
        lifecycle.freeze(conn, invoice_id)
        conn.commit()
    published = warehouse.rows(
        "SELECT total_minor, version FROM closeout.invoices WHERE invoice_id = %s", (invoice_id,)
    )
    harvest.update_entry(int(entry_id), hours=float(hours) + 1.0)

    assert run_dag("closeout_sync_harvest").state == "success"
    assert run_dag("closeout_invoice_drafts").state == "success"
    assert (
        warehouse.rows("SELECT total_minor, version FROM closeout.invoices WHERE invoice_id = %s", (invoice_id,))
        == published
    ), "a published invoice never changes"
    adjustment = warehouse.rows(
        """SELECT l.kind, l.adjusts_invoice_id, l.adjusts_line_no, e.source_id, e.version, e.amount_minor
           FROM closeout.invoice_lines l JOIN closeout.invoice_line_entries e USING (invoice_id, line_no)
           WHERE l.kind = 'adjustment'"""
    )
    assert len(adjustment) == 1
    kind, adjusts, adjusts_line_no, source_id, version, amount = adjustment[0]
    assert (kind, adjusts, source_id, version) == ("adjustment", invoice_id, entry_id, 2)
    assert adjusts_line_no is not None and amount > 0
    with connect() as conn:
        check_invariants(conn)

    # nothing new: the drafting writes nothing
    assert run_dag("closeout_invoice_drafts").state == "success"
    last = warehouse.rows("SELECT status, invoices_changed FROM closeout.draft_runs ORDER BY draft_run_id DESC LIMIT 1")
    assert last == [("succeeded", 0)]


def test_a_bad_billing_config_fails_the_run_naming_client_and_field(
    warehouse, run_dag, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    config = tmp_path / "clients.yaml"
    config.write_text("clients:\n  - client_key: harvest:9\n    currency: USD\n    grouping: per_hour\n")
    monkeypatch.setenv("CLOSEOUT_BILLING_CONFIG", str(config))
    monkeypatch.setenv("CLOSEOUT_TASK_RETRIES", "0")
    result = run_dag("closeout_invoice_drafts")
    assert result.state == "failed"
    assert result.task_states["load_billing_config"] == "failed"
    from closeout.billing import config as billing_config

    with pytest.raises(billing_config.BillingConfigError, match=r"client harvest:9: grouping: 'per_hour'"):
        billing_config.read(config)
