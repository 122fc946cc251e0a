"""Invoice and period evidence packs built from a real chain: entries synced from the Harvest sandbox by
``closeout_sync_harvest`` (dag.test), drafted by ``closeout_invoice_drafts``, published to the Stripe sandbox, paid,
Stripe's events applied and the journals posted through closeout's own tasks. The packs are read back as an auditor
would: every file parses, every sha256 matches, the figures tie to the warehouse, formula cells are neutralised and
no secret is in any file."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

import pytest
from closeout.payments import tasks as payment_tasks
from closeout.warehouse.db import connect
from evidence_support import every_byte, folder_of, open_pack

from sandbox.harvest import generate_dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ledger"))
from ledger_support import follow

pytestmark = pytest.mark.integration

FORMULA_NAME = "=HYPERLINK(\"http://evil.example\",\"Client\")"
FORMULA_NOTE = "+cmd|' /C calc'!A0 billed"


def _last_month() -> date:
    return (date.today().replace(day=1) - timedelta(days=1)).replace(day=1)


@pytest.fixture
def chain(warehouse, harvest, stripe_sandbox, run_dag, tmp_path, monkeypatch):
    """One client's month synced, drafted, published, paid and journaled; returns the published invoice id and the
    planted values."""
    monkeypatch.setenv("CLOSEOUT_ARTIFACTS_URL", str(tmp_path / "artifacts"))
    harvest.load(generate_dataset(40, seed=23, anchor=date.today(), days=70, n_clients=1))
    entries = harvest.entries_snapshot()
    client = entries[0]["client"]
    start = _last_month()
    in_month = [e for e in entries if e["spent_date"].startswith(start.strftime("%Y-%m")) and e["billable"]]
    assert in_month, "the dataset has billable entries last month"
    # a note a person typed: a formula, and the Harvest token pasted by mistake
    planted = in_month[0]["id"]
    harvest.update_entry(planted, notes=f"{FORMULA_NOTE} {harvest.token}")
    # an expense spent in the month, then edited: two versions in the period pack
    expense = harvest.expenses.create_expense(spent_date=start + timedelta(days=3), total_cost=42.5, notes="Taxi")
    config = tmp_path / "clients.yaml"
    config.write_text(
        f"""defaults:
  require_approval: false
clients:
  - client_key: "harvest:{client['id']}"
    name: '{FORMULA_NAME}'
    email: ap@client.example
    currency: {client['currency']}
    grouping: entry
""",
        encoding="utf-8",
    )
    monkeypatch.setenv("CLOSEOUT_BILLING_CONFIG", str(config))
    assert run_dag("closeout_sync_harvest").state == "success"
    harvest.expenses.update_expense(expense["id"], total_cost=45.0)
    assert run_dag("closeout_sync_harvest").state == "success"
    assert run_dag("closeout_invoice_drafts").state == "success"
    payment_tasks.publish_drafts("publish")
    follow("evidence-1")
    invoice_id, stripe_id = warehouse.rows(
        """SELECT invoice_id, stripe_invoice_id FROM closeout.invoices
           WHERE period_start = %s AND stripe_invoice_id IS NOT NULL""", (start,))[0]  # fmt: skip
    stripe_sandbox.pay_invoice(stripe_id)
    follow("evidence-2")
    assert warehouse.scalar("SELECT status FROM closeout.invoices WHERE invoice_id = %s", (invoice_id,)) == "paid"
    return {"invoice_id": invoice_id, "stripe_invoice_id": stripe_id, "period": start.strftime("%Y-%m"),
            "planted_entry": str(planted), "secrets": [harvest.token, stripe_sandbox.secret_key]}  # fmt: skip


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "closeout.evidence", *args], capture_output=True, text=True,
                          env=dict(os.environ), timeout=120)  # fmt: skip


def test_an_invoice_pack_traces_the_invoice_to_entries_calls_stripe_and_journals(warehouse, chain) -> None:
    invoice_id = chain["invoice_id"]
    done = _cli("pack", "--invoice", invoice_id)
    assert done.returncode == 0, done.stderr
    index = done.stdout.split("evidence pack written: ", 1)[1].splitlines()[0]
    assert f"/evidence/invoices/{invoice_id}/index.json" in index
    pack = open_pack(index)
    tables = pack["json"]
    assert pack["index"]["pack"] == "invoice" and pack["index"]["subject"]["invoice_id"] == invoice_id

    # the invoice and its lines tie to the warehouse, and to each other (invariant 2)
    [invoice] = tables["invoices"]
    total, currency, paid = warehouse.rows("SELECT total_minor, currency, amount_paid_minor FROM closeout.invoices "
                                           "WHERE invoice_id = %s", (invoice_id,))[0]  # fmt: skip
    assert (invoice["total_minor"], invoice["currency"], invoice["amount_paid_minor"]) == (total, currency, paid)
    assert invoice["stripe_invoice_id"] == chain["stripe_invoice_id"] and invoice["stripe_total_minor"] == total
    assert sum(line["amount_minor"] for line in tables["invoice_lines"]) == total
    assert len(tables["invoice_lines"]) == warehouse.scalar(
        "SELECT count(*) FROM closeout.invoice_lines WHERE invoice_id = %s", (invoice_id,))  # fmt: skip
    by_line: dict[int, int] = defaultdict(int)
    for billed in [*tables["line_entries"], *tables["line_expenses"]]:  # the month's expense is billed too
        by_line[billed["line_no"]] += billed["amount_minor"]
    assert by_line == {line["line_no"]: line["amount_minor"] for line in tables["invoice_lines"]}

    # every billed entry version is in the pack with the tracker's ids and the rate inputs
    versions = {(v["source"], v["source_id"], v["version"]): v for v in tables["entry_versions"]}
    for billed in tables["line_entries"]:
        version = versions[(billed["source"], billed["source_id"], billed["version"])]
        assert version["billed_here"] is True and version["amount_minor"] == billed["amount_minor"]
        assert version["client_source_id"] and version["project_source_id"] and version["user_source_id"]
        assert version["billable_rate"] == billed["unit_rate"] and version["drafted_rate"] == billed["unit_rate"]
        assert version["hours"] and version["drafted_quantity"] == billed["quantity"]
    assert sum(v["billed_here"] for v in tables["entry_versions"]) == len(tables["line_entries"])

    # the API calls: the tracker requests of the sync runs that saw those versions, and the Stripe calls
    runs = {v["sync_run_id"] for v in tables["entry_versions"]}
    assert {r["sync_run_id"] for r in tables["sync_runs"]} == runs
    tracker_calls = [c for c in tables["sync_requests"] if c["record_kind"] == "tracker_request"]
    assert len(tracker_calls) == sum(r["requests"] for r in tables["sync_runs"]) > 0
    assert any(c["path"].startswith("/v2/time_entries") and c["records"] for c in tracker_calls), tracker_calls[:3]
    outbox = {r[0]: r[1] for r in warehouse.rows(
        """SELECT idempotency_key, stripe_object_id FROM closeout.stripe_outbox
           WHERE invoice_id = %s OR operation = 'customer.create'""", (invoice_id,))}  # fmt: skip
    stripe_calls = {c["idempotency_key"]: c["object_id"] for c in tables["sync_requests"]
                    if c["record_kind"] == "stripe_outbox"}  # fmt: skip
    assert stripe_calls == outbox and len(outbox) >= 3  # customer, invoice, lines..., finalize

    # Stripe's ids and events
    objects = {(o["object_type"], o["object_id"]) for o in tables["stripe_objects"]}
    assert ("invoice", chain["stripe_invoice_id"]) in objects
    assert any(kind == "customer" for kind, _ in objects) and any(k == "payment:payment" for k, _ in objects)
    events = {e["event_id"] for e in tables["stripe_events"]}
    of_invoice = {r[0] for r in warehouse.rows(
        "SELECT event_id FROM closeout.stripe_events WHERE invoice_id = %s", (invoice_id,))}  # fmt: skip
    assert of_invoice and of_invoice <= events
    object_ids = {object_id for _, object_id in objects}
    assert all(e["invoice_id"] == invoice_id or e["object_id"] in object_ids for e in tables["stripe_events"])
    assert "invoice.paid" in {e["event_type"] for e in tables["stripe_events"]}

    # the journals and their lines, as posted, balanced
    journals = {j["journal_id"] for j in tables["journals"]}
    assert journals and journals == {r[0] for r in warehouse.rows(
        "SELECT journal_id FROM closeout.ledger_journals WHERE invoice_id = %s", (invoice_id,))}  # fmt: skip
    lines = tables["journal_lines"]
    assert {line["journal_id"] for line in lines} == journals
    assert sum(line["debit_minor"] for line in lines) == sum(line["credit_minor"] for line in lines) == \
        warehouse.scalar("SELECT sum(debit_minor) FROM closeout.ledger_lines WHERE invoice_id = %s", (invoice_id,))

    # CSV: the same figures, formula cells neutralised; JSON keeps the text as typed
    csv_invoice = pack["csv"]["invoices"][0]
    assert csv_invoice["client_name"] == "'" + FORMULA_NAME and tables["invoices"][0]["client_name"] == FORMULA_NAME
    assert csv_invoice["total_minor"] == str(total) and csv_invoice["currency"] == currency
    planted = [v for v in pack["csv"]["entry_versions"] if v["source_id"] == chain["planted_entry"]]
    assert planted and all(v["notes"].startswith("'" + FORMULA_NOTE) for v in planted), planted
    for name, rows in pack["csv"].items():
        for row in rows:
            for column, cell in row.items():
                assert not cell or (cell[0] not in "=+@" and not (cell[0] == "-" and not _is_number(cell))), \
                    (name, column, cell)

    # no secret anywhere: the token pasted into a note is masked, the Stripe key never there
    everything = every_byte(index)
    for secret in chain["secrets"]:
        assert secret.encode() not in everything
    planted_notes = [v["notes"] or "" for v in tables["entry_versions"] if v["source_id"] == chain["planted_entry"]]
    assert planted_notes and all("***" in note for note in planted_notes)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def test_a_period_pack_holds_the_periods_invoices_journals_and_verdicts(warehouse, chain) -> None:
    from closeout.evidence.tasks import write_period_evidence

    written = write_period_evidence(chain["period"])
    pack = open_pack(written["index"])
    assert folder_of(written["index"]).parts[-2:] == ("evidence", chain["period"])
    tables = pack["json"]
    start = date.fromisoformat(chain["period"] + "-01")
    end = (start + timedelta(days=32)).replace(day=1)
    expected = [r[0] for r in warehouse.rows(
        "SELECT invoice_id FROM closeout.invoices WHERE period_start >= %s AND period_start < %s ORDER BY 1",
        (start, end))]  # fmt: skip
    assert [i["invoice_id"] for i in tables["invoices"]] == expected and chain["invoice_id"] in expected
    assert set(written["invoices"]) == set(expected)
    for invoice_index in written["invoices"].values():
        open_pack(invoice_index)
    totals = pack["index"]["subject"]["total_minor_by_currency"]
    for currency, total in totals.items():
        assert total == warehouse.scalar(
            "SELECT sum(total_minor) FROM closeout.invoices WHERE period_start >= %s AND period_start < %s "
            "AND currency = %s", (start, end, currency))  # fmt: skip
    per_journal: dict[str, int] = defaultdict(int)
    for line in tables["journal_lines"]:
        per_journal[line["journal_id"]] += line["debit_minor"] - line["credit_minor"]
    assert per_journal and set(per_journal.values()) == {0}, "every journal balances (invariant 4)"
    assert {"recon_checks", "payout_holds"} <= set(tables)
    # the month's expenses, every version, as the warehouse holds them
    assert [(e["source_id"], e["version"], e["amount_minor"]) for e in tables["expense_versions"]] == [
        (r[0], r[1], r[2]) for r in warehouse.rows(
            "SELECT source_id, version, amount_minor FROM closeout.expense_versions WHERE spent_date >= %s "
            "AND spent_date < %s ORDER BY source, source_id, version", (start, end))]  # fmt: skip
    assert sorted(e["amount_minor"] for e in tables["expense_versions"]
                  if e["notes"] == "Taxi") == [4250, 4500]  # fmt: skip
    for secret in chain["secrets"]:
        assert secret.encode() not in every_byte(written["index"])


def test_sync_requests_is_the_call_log_of_every_tracker_run(warehouse, chain) -> None:
    per_run = dict(warehouse.rows("SELECT sync_run_id, requests FROM closeout.sync_runs WHERE requests > 0"))
    counted = dict(warehouse.rows(
        """SELECT sync_run_id, count(*) FROM closeout.sync_requests WHERE record_kind = 'tracker_request'
           GROUP BY sync_run_id"""))  # fmt: skip
    assert counted == per_run and per_run
    paths = [p for (p,) in warehouse.rows("SELECT path FROM closeout.sync_requests WHERE path IS NOT NULL")]
    assert all(p.startswith("/") for p in paths), paths[:5]
    assert not [p for p in paths if any(s in p for s in chain["secrets"])]
    kinds = {k for (k,) in warehouse.rows("SELECT DISTINCT record_kind FROM closeout.sync_requests")}
    assert kinds == {"tracker_request", "stripe_outbox", "stripe_run"}
    assert warehouse.scalar("SELECT count(*) FROM closeout.sync_requests WHERE record_kind = 'stripe_outbox' "
                            "AND (idempotency_key IS NULL OR started_at IS NULL)") == 0  # fmt: skip


def test_an_unknown_invoice_or_a_malformed_period_is_refused_by_name(warehouse, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CLOSEOUT_ARTIFACTS_URL", str(tmp_path / "artifacts"))
    missing = _cli("pack", "--invoice", "INV-NOPE")
    assert missing.returncode == 2 and "invoice INV-NOPE does not exist" in missing.stderr
    bad = _cli("pack", "--period", "2026-13")
    assert bad.returncode == 2 and "expected YYYY-MM" in bad.stderr
    with connect() as conn:
        from closeout.evidence import period_pack

        empty = period_pack(conn, "2020-01")
    assert open_pack(empty.index)["json"]["invoices"] == []
