"""closeout_month_end_close as real DAG runs (``dag.test``) on real Postgres, against the Harvest and Stripe
sandboxes: a period closed end to end; a re-run that changes nothing (sandbox request counters and warehouse row
counts) and says so; a dry run with no Stripe mutation, no lock and no hold; a failing step retried alone without
repeating a side effect, and a new run taking over a failed close; a late edit to the locked period billed as an
adjustment in the next one; a breach acting through the real gate with the report linked from finance's alert and the
run's note; the 'auto' publish-policy override publishing held drafts only once finance approves them; clear
refusals for a malformed, unfinished, already-locked period and for a second close while one runs."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import requests
from closeout.billing import periods
from closeout.close import runs, steps, tasks
from closeout.close.params import read_params
from closeout.close.runs import CloseRefused
from closeout.warehouse.db import connect
from conftest import DagRunResult, load_dag
from payments_support import check_invariant_3, last_month

from sandbox.harvest import generate_dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ledger"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gate"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import gate_support
from ledger_support import check_invariants

pytestmark = pytest.mark.integration

# the gate's fixtures: a real `airflow api-server` (shared per process), SMTP and webhook receivers
api_server, airflow_api, smtp, hook_receiver, finance_conns = (
    gate_support.api_server, gate_support.airflow_api, gate_support.smtp, gate_support.hook_receiver,
    gate_support.finance_conns,
)  # fmt: skip

DAG_ID = "closeout_month_end_close"
PERIOD_START = last_month()
PERIOD = PERIOD_START.strftime("%Y-%m")
NEXT_START = (PERIOD_START + timedelta(days=32)).replace(day=1)
CONF = {"period": PERIOD, "trackers": ["harvest"]}
BEFORE_EXPORT = "validate|final_sync|lock_period|drafts|publish|events|journals"
COUNTED = ("closeout.invoices", "closeout.invoice_lines", "closeout.ledger_lines", "closeout.sync_runs",
           "closeout.recon_checks", "closeout.stripe_publications", "closeout_data.accounting_export_runs",
           "closeout.payout_holds", "closeout.period_locks")  # fmt: skip


@pytest.fixture
def books(warehouse, harvest, stripe_sandbox, tmp_path, monkeypatch):
    """Two clients (USD, EUR) with ~10 weeks of time in Harvest; every output folder in tmp_path."""
    harvest.load(generate_dataset(160, seed=3, anchor=date.today(), days=70, n_clients=2))
    config = tmp_path / "clients.yaml"
    config.write_text("defaults:\n  require_approval: false\nclients: []\n")
    for var, value in {"CLOSEOUT_BILLING_CONFIG": config, "CLOSEOUT_EXPORT_DIR": tmp_path / "exports",
                       "CLOSEOUT_DATA_DOCS_DIR": tmp_path / "docs",
                       "CLOSEOUT_REPORTS_URL": tmp_path / "reports"}.items():  # fmt: skip
        monkeypatch.setenv(var, str(value))
    return tmp_path


def close(conf: dict, *, at: datetime | None = None, mark_success: str | None = None) -> DagRunResult:
    """One run of the close; ``at`` pins its logical date (so the same Airflow run can be cleared and run again,
    ``mark_success`` naming the tasks that keep their success, as "Clear" on the failed task does in the UI)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    dag = load_dag(DAG_ID)
    kwargs = {"logical_date": at, "run_after": at} if at else {}
    dag_run = dag.test(run_conf=conf, mark_success_pattern=mark_success, **kwargs)
    with create_session() as session:
        dr = session.query(DagRun).filter(DagRun.dag_id == DAG_ID, DagRun.run_id == dag_run.run_id).one()
        tis = dr.get_task_instances(session=session)
        return DagRunResult(dag_run.run_id, str(dr.state), {t.task_id: str(t.state) for t in tis},
                            {t.task_id: t.try_number for t in tis})  # fmt: skip


def close_row(warehouse, run_id: str) -> dict:
    cols = ("close_run_id", "status", "dry_run", "steps", "message", "report_url", "error")
    row = warehouse.rows(f"SELECT {', '.join(cols)} FROM closeout.period_closes WHERE airflow_run_id = %s", (run_id,))
    assert row, f"no close run for {run_id}"
    return dict(zip(cols, row[0], strict=True))


def counts(warehouse) -> dict[str, int]:
    return {name: warehouse.scalar(f"SELECT count(*) FROM {name}") for name in COUNTED}


def period_invoices(warehouse) -> list[tuple]:
    return warehouse.rows(
        """SELECT invoice_id, status, total_minor, version, stripe_invoice_id FROM closeout.invoices
           WHERE period_start >= %s AND period_end < %s AND total_minor > 0 ORDER BY invoice_id""",
        (PERIOD_START, NEXT_START),
    )


def report_document(url: str) -> dict:
    """The report's JSON, beside its index.html."""
    return json.loads((Path(url).parent / f"close-report-{PERIOD}.json").read_text())


# -- end to end, re-run, late edit ------------------------------------------------------------------------------
def test_close_end_to_end_then_rerun_changes_nothing_then_a_late_edit_is_adjusted_next_period(
    warehouse, books, harvest, stripe_sandbox, airflow_db, caplog
) -> None:
    first = close(CONF)
    assert first.state == "success", first
    assert set(first.task_states.values()) == {"success"}, first
    row = close_row(warehouse, first.run_id)
    assert row["status"] == "succeeded" and row["dry_run"] is False, row
    assert [s for s, v in row["steps"].items() if v["status"] != "succeeded"] == [], row["steps"]

    # the period is captured, locked, billed, published, journaled, exported, reconciled and reported
    assert row["steps"]["final_sync"]["summary"]["trackers"]["harvest"]["status"] == "succeeded"
    with connect() as conn:
        lock = periods.lock_status(conn, PERIOD)
    assert lock and lock["close_run_id"] == str(row["close_run_id"]) and lock["covered_by"] == PERIOD, lock
    invoices = period_invoices(warehouse)
    assert invoices and all(status == "open" and stripe_id for _, status, _, _, stripe_id in invoices), invoices
    check_invariant_3(warehouse, stripe_sandbox)
    check_invariants(warehouse)  # every journal balances; receivable = unpaid remainder of open invoices
    export = row["steps"]["accounting_export"]["summary"]
    assert export["invoices"] == len(invoices) and Path(export["folder"]).is_dir()
    assert Path(export["folder"]) == books / "exports" / PERIOD
    recon = row["steps"]["reconcile"]["summary"]
    assert recon["status"] == "passed" and not recon["holds"], recon
    assert row["report_url"] and Path(row["report_url"]).is_file(), row
    assert warehouse.scalar("SELECT count(*) FROM closeout.payout_holds") == 0
    with connect() as conn:  # the summary the last task logs: one line per step, each with its counts
        lines = tasks.summary_lines(runs.load(conn, first.run_id))
    assert [line.split()[:2] for line in lines] == [[name, "succeeded"] for name in steps.ORDER], lines

    # re-run: nothing else runs, no request reaches a sandbox, no row changes, and the close says so
    before, harvest_requests, stripe_requests = counts(warehouse), harvest.stats()["requests"], \
        stripe_sandbox.stats()["requests"]  # fmt: skip
    again = close(CONF)
    assert again.state == "success", again
    assert again.task_states.pop("validate") == "success"
    assert set(again.task_states.values()) == {"skipped"}, again
    assert harvest.stats()["requests"] == harvest_requests
    assert stripe_sandbox.stats()["requests"] == stripe_requests
    assert counts(warehouse) == before
    rerun = close_row(warehouse, again.run_id)
    assert rerun["status"] == "already_closed"
    when = _finished(warehouse, first.run_id)
    said = f"period {PERIOD} was closed by run {first.run_id} at {when}; nothing changed; report: {row['report_url']}"
    assert rerun["message"] == said
    with caplog.at_level(logging.INFO, logger="closeout.close.tasks"):  # and the task's log says it in those words
        assert tasks.validate("rerun-by-hand", CONF)["proceed"] is False
    assert said in caplog.text

    # a late edit to an entry of the locked period: the next sync and drafting bill it as an adjustment on the
    # client's next draft; the closed invoice does not change
    invoice_id, entry_id, hours = warehouse.rows(
        """SELECT i.invoice_id, e.source_id, t.hours FROM closeout.invoices i
           JOIN closeout.invoice_line_entries e USING (invoice_id)
           JOIN closeout.time_entries t ON t.source = e.source AND t.source_id = e.source_id
           WHERE i.period_start >= %s AND i.period_end < %s ORDER BY i.invoice_id, e.source_id LIMIT 1""",
        (PERIOD_START, NEXT_START),
    )[0]
    harvest.update_entry(int(entry_id), hours=float(hours) + 1.0)
    assert load_dag("closeout_sync_harvest").test().state == "success"
    assert load_dag("closeout_invoice_drafts").test().state == "success"
    assert period_invoices(warehouse) == invoices, "a closed period's invoices never change"
    adjustments = warehouse.rows(
        """SELECT i.period_start, l.adjusts_invoice_id, e.source_id FROM closeout.invoice_lines l
           JOIN closeout.invoices i USING (invoice_id)
           JOIN closeout.invoice_line_entries e USING (invoice_id, line_no) WHERE l.kind = 'adjustment'"""
    )
    assert len(adjustments) == 1, adjustments
    next_start, adjusts, source_id = adjustments[0]
    assert next_start >= NEXT_START and adjusts == invoice_id and source_id == entry_id, adjustments[0]


def _finished(warehouse, run_id: str) -> str:
    finished = warehouse.scalar("SELECT finished_at FROM closeout.period_closes WHERE airflow_run_id = %s", (run_id,))
    return finished.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


# -- dry run ----------------------------------------------------------------------------------------------------
def test_dry_run_mutates_nothing_outside_and_reports_what_it_would_do(
    warehouse, books, stripe_sandbox, airflow_db
) -> None:
    stripe_sandbox.reset_stats()
    result = close({**CONF, "dry_run": True})
    assert result.state == "success", result
    stats = stripe_sandbox.stats()
    assert stats["mutations"] == 0 and stripe_sandbox.count("invoice") == 0 and stripe_sandbox.count("customer") == 0
    assert stats["requests"] > 0 and {method for method, _, _ in stats["log"]} == {"GET"}, stats["log"]
    assert warehouse.scalar("SELECT count(*) FROM closeout.period_locks") == 0
    assert warehouse.scalar("SELECT count(*) FROM closeout.payout_holds") == 0
    assert warehouse.scalar("SELECT count(*) FROM closeout.recon_runs") == 0, "a dry run leaves no verdict behind"

    row = close_row(warehouse, result.run_id)
    assert row["status"] == "succeeded" and row["dry_run"] is True
    steps = row["steps"]
    assert steps["lock_period"]["summary"]["would_lock"] is True
    would = steps["publish"]["summary"]["would_publish"]
    drafts = warehouse.rows(
        """SELECT invoice_id, currency, total_minor FROM closeout.invoices WHERE status = 'draft' AND total_minor > 0
           AND period_end < %s ORDER BY invoice_id""", (NEXT_START,))  # fmt: skip
    assert drafts and sorted(i["invoice_id"] for i in would["invoices"]) == [d[0] for d in drafts]
    totals: dict[str, int] = {}
    for _, currency, total in drafts:
        totals[currency] = totals.get(currency, 0) + total
    assert would["totals_minor"] == totals
    assert Path(steps["accounting_export"]["summary"]["folder"]) == books / "exports" / "dry-run" / PERIOD
    assert not (books / "exports" / PERIOD).exists()
    assert "dry-run" in row["report_url"] and Path(row["report_url"]).is_file()
    assert report_document(row["report_url"])["dry_run"] is True

    # a dry run is no close: the real one still runs (it is not "already closed")
    with connect() as conn:
        assert runs.closed(conn, PERIOD) is None


# -- a failing step, retried alone ------------------------------------------------------------------------------
def test_a_failed_step_is_retried_alone_without_repeating_side_effects(
    warehouse, books, harvest, stripe_sandbox, airflow_db, monkeypatch
) -> None:
    # Stripe answers one invoice creation with a 500: Airflow retries publish alone and the outbox replays
    stripe_sandbox.inject("error_500", times=1, path_prefix="/v1/invoices")
    # and the accounting export cannot write (its folder is a file): that step fails for good
    blocked = books / "not-a-folder"
    blocked.write_text("")
    monkeypatch.setenv("CLOSEOUT_EXPORT_DIR", str(blocked))
    at = datetime.now(UTC).replace(microsecond=0)

    failed = close(CONF, at=at)
    assert failed.state == "failed", failed
    assert stripe_sandbox.stats()["faults"] == 1
    assert failed.tries["publish"] == 2 and failed.task_states["publish"] == "success", failed
    assert failed.task_states["accounting_export"] == "failed", failed
    assert {t: failed.tries[t] for t in ("final_sync", "lock_period", "drafts", "events", "journals")} == dict.fromkeys(
        ("final_sync", "lock_period", "drafts", "events", "journals"), 1)  # fmt: skip
    row = close_row(warehouse, failed.run_id)
    assert row["status"] == "failed" and row["steps"]["accounting_export"]["status"] == "failed", row
    assert "accounting_export" in row["error"]
    check_invariant_3(warehouse, stripe_sandbox)
    published = period_invoices(warehouse)
    assert published and all(status == "open" for _, status, *_ in published)

    # fixed; the same Airflow run is cleared from the failed step on: the steps before it are not run again
    monkeypatch.setenv("CLOSEOUT_EXPORT_DIR", str(books / "exports"))
    before = counts(warehouse)
    stripe_before, harvest_before = stripe_sandbox.stats(), harvest.stats()["requests"]
    retried = close(CONF, at=at, mark_success=BEFORE_EXPORT)
    assert retried.run_id == failed.run_id
    assert retried.state == "success", retried
    assert stripe_sandbox.stats()["mutations"] == stripe_before["mutations"], "no Stripe call was repeated"
    assert harvest.stats()["requests"] == harvest_before, "no tracker was read again"
    after = counts(warehouse)
    assert {k: after[k] for k in before if k not in ("closeout.recon_checks", "closeout_data.accounting_export_runs")} \
        == {k: before[k] for k in before if k not in ("closeout.recon_checks",
                                                       "closeout_data.accounting_export_runs")}  # fmt: skip
    assert period_invoices(warehouse) == published
    check_invariant_3(warehouse, stripe_sandbox)
    row = close_row(warehouse, retried.run_id)
    assert row["status"] == "succeeded" and row["steps"]["accounting_export"]["status"] == "succeeded", row
    assert row["steps"]["accounting_export"]["summary"]["invoices"] == len(published)


# -- refusals ---------------------------------------------------------------------------------------------------
def test_refusals_name_the_period_and_what_is_wrong(warehouse) -> None:
    with pytest.raises(CloseRefused, match=r"parameter 'period' = '2026-13'"):
        read_params({"period": "2026-13"})
    with pytest.raises(CloseRefused, match=r"'period' = 'last month'"):
        read_params({"period": "last month"})
    with pytest.raises(CloseRefused, match=r"not over yet \(it ends 2026-11-30\); close it from 2026-12-01"):
        read_params({"period": "2026-11"}, today=date(2026, 11, 30))
    assert read_params({"period": "2026-11"}, today=date(2026, 12, 1)).next_start == date(2026, 12, 1)
    with pytest.raises(CloseRefused, match=r"'trackers' = \['jira'\]"):
        read_params({"period": PERIOD, "trackers": ["jira"]})

    # one close at a time, whichever deployment started the other one
    with connect() as conn:
        runs.begin(conn, PERIOD, "other-deployment-run", dry_run=False, params={})
        with pytest.raises(CloseRefused, match=r"another close is running: close run \d+ of period .* "
                                               r"\(Airflow run other-deployment-run"):  # fmt: skip
            runs.begin(conn, PERIOD, "this-run", dry_run=False, params={})
        with pytest.raises(CloseRefused, match="another close is running"):
            tasks.validate("this-run", {"period": PERIOD})
        stuck = runs.running_elsewhere(conn, "this-run")["close_run_id"]

    # ops unblock it with a recorded decision; who and why stay on the abandoned close
    from closeout.close.__main__ import main as close_cli

    assert close_cli(["abandon", "--close-run-id", str(stuck), "--by", "ops@example.com", "--why", " "]) == 2
    assert close_cli(["abandon", "--close-run-id", str(stuck), "--by", "ops@example.com", "--why", "host lost"]) == 0
    assert close_cli(["abandon", "--close-run-id", str(stuck), "--by", "ops@example.com", "--why", "again"]) == 2
    assert close_cli(["list"]) == 0
    with connect() as conn:
        status, error = conn.execute(
            "SELECT status, error FROM closeout.period_closes WHERE close_run_id = %s", (stuck,)
        ).fetchone()
        assert (status, error) == ("failed", "abandoned: host lost (by ops@example.com)")
        assert runs.running_elsewhere(conn, "this-run") is None


def test_an_already_locked_period_is_refused_without_retry(warehouse, airflow_db) -> None:
    with connect() as conn:
        periods.lock_period(conn, PERIOD, locked_by="finance: manual lock")
        conn.commit()
    with pytest.raises(CloseRefused, match=rf"'period' = '{PERIOD}': the period is already locked by "
                                           r"'finance: manual lock'"):  # fmt: skip
        tasks.validate("refused-run", {"period": PERIOD})
    result = close(CONF)
    assert result.state == "failed" and result.task_states["validate"] == "failed", result
    assert result.tries["validate"] == 1, "a refusal is not retried"
    assert warehouse.scalar("SELECT count(*) FROM closeout.period_closes") == 0


def test_a_malformed_period_is_refused_by_the_trigger_form(airflow_db) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError):
        close({"period": "2026-1"})


# -- a breach: the gate acts, finance's alert and the run's note link the close report ------------------------
def test_a_breach_fails_the_close_after_the_gate_and_links_the_report(
    warehouse, books, harvest, stripe_sandbox, airflow_api, smtp, hook_receiver, finance_conns, monkeypatch
) -> None:
    monkeypatch.setenv("CLOSEOUT_PAYOUTS_DAG_ID", "closeout_payouts")
    airflow_api.set_paused("closeout_payouts", False)
    monkeypatch.setenv("CLOSEOUT_EXPORT_DIR", str(books / "not-a-folder"))
    (books / "not-a-folder").write_text("")
    at = datetime.now(UTC).replace(microsecond=0)
    assert close(CONF, at=at).task_states["accounting_export"] == "failed"

    # an entry of the closed period is edited in Harvest and synced, and no drafting runs before the reconcile:
    # its billed amount no longer ties out (invariant 1)
    entry_id, hours = warehouse.rows(
        """SELECT e.source_id, t.hours FROM closeout.invoices i JOIN closeout.invoice_line_entries e USING (invoice_id)
           JOIN closeout.time_entries t ON t.source = e.source AND t.source_id = e.source_id
           WHERE i.period_start >= %s AND i.period_end < %s ORDER BY e.source_id LIMIT 1""",
        (PERIOD_START, NEXT_START),
    )[0]
    harvest.update_entry(int(entry_id), hours=float(hours) + 2.0)
    assert load_dag("closeout_sync_harvest").test().state == "success"
    monkeypatch.setenv("CLOSEOUT_EXPORT_DIR", str(books / "exports"))

    result = close(CONF, at=at, mark_success=BEFORE_EXPORT)
    assert result.state == "failed", result
    assert result.task_states["reconcile"] == "failed" and result.tries["reconcile"] == 1, result
    assert result.task_states["close_report"] == "upstream_failed", result
    row = close_row(warehouse, result.run_id)
    assert row["status"] == "failed" and row["steps"]["reconcile"]["status"] == "failed", row
    url = _report_url(PERIOD)
    assert Path(url).is_file(), "the report is written before the breach fails the close"

    # the gate: payouts paused through the API server, one hold, finance told once with the report's link
    assert airflow_api.is_paused("closeout_payouts") is True
    holds = warehouse.rows("SELECT reason FROM closeout.payout_holds WHERE released_at IS NULL")
    assert len(holds) == 1 and "entries_to_invoice_lines" in holds[0][0] and PERIOD in holds[0][0], holds
    hold_mails = [m for m in smtp.messages if "entries_to_invoice_lines" in m.message["Subject"]]
    assert len(hold_mails) == 1 and f"Close report: {url}" in hold_mails[0].body, [m.body for m in smtp.messages]
    assert [r["json"].get("report_url") for r in hook_receiver.requests if r["json"].get("hold_id")] == [url]
    # and the run's note says so, set through the same API
    answer = requests.get(f"{airflow_api.url}/api/v2/dags/{DAG_ID}/dagRuns/{result.run_id}",
                          headers={"Authorization": f"Bearer {airflow_api.token()}"}, timeout=30)  # fmt: skip
    note = answer.json()["note"]
    assert note == f"Reconciliation breached, payouts held. Close report: {url}"


def _report_url(period: str) -> str:
    from closeout.close.report import report_url

    return report_url(period)


# -- the publish-policy override -----------------------------------------------------------------------------------
def test_policy_override_auto_asks_finance_and_publishes_held_drafts_only_once_approved(
    warehouse, books, stripe_sandbox, airflow_db, api_server, monkeypatch
) -> None:
    """'auto' no longer approves held drafts as "close run N": the close waits in approve_held_drafts until
    someone in finance other than the requester approves; then the drafts are published, approved by that person,
    and each has its decision in closeout.decisions."""
    from close_approval_support import Answerer

    (books / "clients.yaml").write_text("defaults:\n  require_approval: false\n  publish_policy: hold\nclients: []\n")
    monkeypatch.setenv("CLOSEOUT_FINANCE_APPROVERS", gate_support.API_USER)
    monkeypatch.delenv("CLOSEOUT_HELD_DRAFTS_APPROVAL", raising=False)
    conf = {**CONF, "publish_policy": "auto"}

    preview = close({**conf, "dry_run": True})  # a dry run asks nobody and approves nothing
    assert preview.state == "success", preview
    assert preview.task_states["approve_held_drafts"] == "success", preview
    would = close_row(warehouse, preview.run_id)["steps"]["publish"]["summary"]["would_publish"]
    assert would["count"] > 0 and set(would["by_action"]) == {"approve_and_publish"}, would
    assert warehouse.scalar("SELECT count(*) FROM closeout.invoices WHERE approved_by IS NOT NULL") == 0
    assert warehouse.scalar("SELECT count(*) FROM closeout.decisions") == 0
    assert stripe_sandbox.count("invoice") == 0

    person = Answerer(api_server.url, lambda user: {"Authorization": f"Bearer {api_server.token()}"},
                      gate_support.API_USER, [(gate_support.API_USER, "Approve")],
                      look=lambda: (stripe_sandbox.count("invoice"), warehouse.scalar(
                          "SELECT count(*) FROM closeout.invoices WHERE approved_by IS NOT NULL")))  # fmt: skip
    person.start()
    result = close(conf)
    person.finish()
    assert person.seen == (0, 0), "it waited: nothing approved or published before the answer"
    assert person.statuses == [(gate_support.API_USER, 200)]
    assert result.state == "success", result
    close_run_id = close_row(warehouse, result.run_id)["close_run_id"]
    rows = warehouse.rows(
        """SELECT invoice_id, status, approved_by, approved_version = version FROM closeout.invoices
           WHERE period_start >= %s AND period_end < %s AND total_minor > 0""",
        (PERIOD_START, NEXT_START),
    )
    assert sorted(r[0] for r in rows) == sorted(i["invoice_id"] for i in would["invoices"])
    assert {(status, by, same) for _, status, by, same in rows} == {
        ("open", f"approval: {gate_support.API_USER}", True)}, rows  # fmt: skip
    assert f"close run {close_run_id}" not in {by for _, _, by, _ in rows}
    decisions = warehouse.rows("SELECT kind, subject, requested_by, decided_by, outcome FROM closeout.decisions")
    assert sorted(decisions) == sorted(("held_drafts", r[0], "dag_test", gate_support.API_USER, "approved")
                                       for r in rows)  # fmt: skip
    check_invariant_3(warehouse, stripe_sandbox)


def test_a_new_run_resumes_a_failed_close_of_the_period_it_locked(
    warehouse, books, harvest, stripe_sandbox, airflow_db, monkeypatch
) -> None:
    monkeypatch.setenv("CLOSEOUT_EXPORT_DIR", str(books / "not-a-folder"))
    (books / "not-a-folder").write_text("")
    failed = close(CONF)
    assert failed.task_states["accounting_export"] == "failed", failed
    first = close_row(warehouse, failed.run_id)
    mutations = stripe_sandbox.stats()["mutations"]

    # the period stays locked by the failed close; a new run of the close (not a clear) takes it over
    monkeypatch.setenv("CLOSEOUT_EXPORT_DIR", str(books / "exports"))
    resumed = close(CONF)
    assert resumed.state == "success", resumed
    row = close_row(warehouse, resumed.run_id)
    assert row["status"] == "succeeded" and row["close_run_id"] != first["close_run_id"]
    assert row["steps"]["lock_period"]["summary"]["already_locked"] is True
    assert row["steps"]["lock_period"]["summary"]["close_run_id"] == str(first["close_run_id"])
    assert stripe_sandbox.stats()["mutations"] == mutations, "what the failed close published is not sent again"
    check_invariant_3(warehouse, stripe_sandbox)
