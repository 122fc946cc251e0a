"""closeout_pilot_compare in real DAG runs (dag.test) on entries synced from the Harvest sandbox by
closeout_sync_harvest and drafted by closeout_invoice_drafts: per client and month, the tracker's entries against
closeout's invoice lines and, where the team still invoices from Harvest (is_billed / invoice on the entries),
against Harvest's billing; the rollback criteria evaluated on every run, each breach alerted once through the
alert path (platform webhook, finance e-mail and webhook) naming client, month and criterion, and resolved once
it no longer holds."""

from __future__ import annotations

import json
import re
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
import requests
from closeout.alerts.notify import delivery_id
from payments_support import last_month
from pilot_support import write_pilot

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gate"))
import gate_support
from gate_support import HttpReceiver

from sandbox.harvest import generate_dataset

pytestmark = pytest.mark.integration

smtp, hook_receiver, finance_conns = gate_support.smtp, gate_support.hook_receiver, gate_support.finance_conns
PLATFORM_TOKEN = "plat-bearer-pilot-31c7"
SUBJECT = re.compile(r"criterion (?P<criterion>\w+) breached for (?P<client>\S+) \((?P<period>\d{4}-\d{2})\)")


@pytest.fixture
def platform(monkeypatch: pytest.MonkeyPatch):
    receiver = HttpReceiver().start()
    monkeypatch.setenv("AIRFLOW_CONN_PLATFORM_WEBHOOK", json.dumps(
        {"conn_type": "http", "host": receiver.url.replace("/finance", "/platform"), "password": PLATFORM_TOKEN}))
    yield receiver
    receiver.stop()


def _billable_projects(harvest) -> dict[int, list[dict]]:
    """client id -> billable projects billed by a rate, as Harvest's API lists them."""
    got = requests.get(f"{harvest.url}/v2/projects", headers=harvest.auth_headers(), timeout=10).json()
    by_client: dict[int, list[dict]] = {}
    for project in got["projects"]:
        if project["is_billable"] and project.get("bill_by") in ("People", "Project"):
            by_client.setdefault(project["client"]["id"], []).append(project)
    return by_client


def _entry(harvest, project: dict, day: date, hours: float, **fields) -> str:
    entry = harvest.create_entry(project_id=project["id"], spent_date=day, hours=hours, billable=True, **fields)
    return str(entry["id"])


def _compare(run_dag, on: date, period: str) -> None:
    result = run_dag("closeout_pilot_compare", {"compared_on": on.isoformat(), "period": period})
    assert result.state == "success", result


def _sync_and_draft(run_dag) -> None:
    assert run_dag("closeout_sync_harvest").state == "success"
    assert run_dag("closeout_invoice_drafts").state == "success"


def _alerts(platform, smtp, hook_receiver) -> list[tuple[str, str, str, str]]:
    """(channel, client, period, criterion) of every pilot alert received, read from what each receiver got."""
    got = [("platform", r["json"]["client_key"], r["json"]["period"], r["json"]["criterion"])
           for r in platform.requests if r["json"].get("event") == "pilot_rollback_criterion"]
    got += [("finance_webhook", r["json"]["client_key"], r["json"]["period"], r["json"]["criterion"])
            for r in hook_receiver.requests if r["json"].get("event") == "pilot_rollback_criterion"]
    for mail in smtp.messages:
        found = SUBJECT.search(str(mail.message["subject"]).replace("\n", ""))
        if found:
            got.append(("finance_smtp", found["client"], found["period"], found["criterion"]))
    return sorted(got)


def test_daily_comparison_finds_differences_both_ways_and_alerts_each_breach_once(
    warehouse, harvest, run_dag, platform, smtp, hook_receiver, finance_conns, tmp_path, monkeypatch
) -> None:
    harvest.load(generate_dataset(0, seed=4, n_clients=4))
    projects = _billable_projects(harvest)
    (a_id, a_projects), (b_id, b_projects) = sorted(projects.items())[:2]
    a, b = f"harvest:{a_id}", f"harvest:{b_id}"
    month = last_month()
    period = month.strftime("%Y-%m")
    billing = tmp_path / "clients.yaml"
    billing.write_text("defaults: {require_approval: false, grouping: entry}\nclients: []\n", encoding="utf-8")
    monkeypatch.setenv("CLOSEOUT_BILLING_CONFIG", str(billing))
    write_pilot(tmp_path / "pilot.json", {a: month}, monkeypatch,
                rollback={"consecutive_failing_days": 2, "amount_tolerance_minor": 0})  # fmt: skip

    # a (cohort): two entries closeout bills. b (shadow): one entry the team invoiced in Harvest, one it did not
    a1 = _entry(harvest, a_projects[0], month + timedelta(days=2), 2.0)
    _entry(harvest, a_projects[0], month + timedelta(days=3), 3.0)
    b_invoiced = _entry(harvest, b_projects[0], month + timedelta(days=4), 2.0, is_billed=True)
    b_left = _entry(harvest, b_projects[0], month + timedelta(days=5), 1.0)
    _sync_and_draft(run_dag)
    assert warehouse.scalar("SELECT billable_rate FROM closeout.time_entries WHERE source_id = %s", (a1,)) is not None

    day0 = date.today()
    _compare(run_dag, day0, period)
    rows = {r[0]: r[1:] for r in warehouse.rows(
        """SELECT client_key, cohort, status, source_minor, invoiced_minor, entries_not_invoiced, tracker_compared,
                  tracker_billed_minor, tracker_differences, hard_mismatches
           FROM closeout.pilot_comparisons WHERE compared_on = %s AND period = %s""", (day0, period))}  # fmt: skip
    assert set(rows) == {a, b}
    cohort, status, source, invoiced, not_invoiced, tracker, _, _, hard = rows[a]
    assert (cohort, status, not_invoiced, tracker, hard) == (True, "match", 0, False, 0)
    assert source == invoiced > 0
    cohort, status, source, invoiced, _, tracker, tracker_minor, tracker_diffs, hard = rows[b]
    assert (cohort, status, tracker, tracker_diffs, hard) == (False, "mismatch", True, 1, 0)
    assert tracker_minor > 0 and invoiced == source > 0, "Harvest's invoiced entry is left out of closeout's draft"
    items = warehouse.rows("SELECT client_key, kind, item, hard FROM closeout.pilot_comparison_items")
    assert items == [(b, "closeout_only", f"harvest:{b_left}", False)]
    assert warehouse.scalar("SELECT count(*) FROM closeout.pilot_breaches") == 0
    assert _alerts(platform, smtp, hook_receiver) == []
    assert b_invoiced not in {i[2] for i in items}

    # a's next entry has no rate in Harvest: closeout cannot bill it -> a hard mismatch on a cohort client
    no_rate = _entry(harvest, a_projects[0], month + timedelta(days=6), 1.5, billable_rate=None)
    _sync_and_draft(run_dag)
    day1 = day0 + timedelta(days=1)
    _compare(run_dag, day1, period)
    (item,) = warehouse.rows(
        """SELECT kind, item, hard, detail FROM closeout.pilot_comparison_items
           WHERE client_key = %s AND run_id = (SELECT run_id FROM closeout.pilot_comparison_runs
                                               WHERE compared_on = %s)""", (a, day1))  # fmt: skip
    assert item[:3] == ("entry_not_invoiced", f"harvest:{no_rate}", True) and "missing_rate" in item[3]
    breaches = warehouse.rows("SELECT client_key, period, criterion FROM closeout.pilot_breaches")
    assert breaches == [(a, period, "hard_mismatch")]
    assert _alerts(platform, smtp, hook_receiver) == [
        (ch, a, period, "hard_mismatch") for ch in ("finance_smtp", "finance_webhook", "platform")]
    alert = hook_receiver.requests[-1]["json"]
    for needed in (f"Client:    {a}", f"Period:    {period}", "Criterion: hard_mismatch", "1 hard difference(s)",
                   "closeout.pilot_comparison_items"):  # fmt: skip
        assert needed in alert["text"], needed
    assert PLATFORM_TOKEN not in json.dumps(alert) and gate_support.WEBHOOK_TOKEN not in json.dumps(alert)
    # each send carries its delivery's identity, so a resend after a crash is recognisably the same alert
    (cause_id, fp) = warehouse.rows("SELECT cause_id, fingerprint FROM closeout.alert_causes "
                                    "WHERE dag_id = 'closeout_pilot_compare'")[0]  # fmt: skip
    assert hook_receiver.requests[-1]["headers"]["Idempotency-Key"] == delivery_id(cause_id, fp, "finance_webhook")
    assert platform.requests[-1]["headers"]["Idempotency-Key"] == delivery_id(cause_id, fp, "platform_webhook")
    assert smtp.messages[-1].message["Message-ID"] == f"<{delivery_id(cause_id, fp, 'finance_smtp')}>"

    # the next day: still breached (told already), and now two failing days in a row: that criterion is news
    day2 = day1 + timedelta(days=1)
    _compare(run_dag, day2, period)
    assert _alerts(platform, smtp, hook_receiver) == sorted(
        [(ch, a, period, c) for ch in ("finance_smtp", "finance_webhook", "platform")
         for c in ("hard_mismatch", "consecutive_failing_days")])  # fmt: skip
    _compare(run_dag, day2 + timedelta(days=1), period)  # and again: nothing new
    assert len(_alerts(platform, smtp, hook_receiver)) == 6
    assert warehouse.rows(
        """SELECT criterion, count(*) FROM closeout.pilot_breaches GROUP BY criterion ORDER BY 1""") == [
        ("consecutive_failing_days", 2), ("hard_mismatch", 3)]  # fmt: skip
    assert warehouse.rows(
        """SELECT channel, count(*), max(occurrences) FROM closeout.alerts_sent
           WHERE dag_id = 'closeout_pilot_compare' AND status = 'sent' GROUP BY channel ORDER BY 1""") == [
        ("finance_smtp", 2, 3), ("finance_webhook", 2, 3), ("platform_webhook", 2, 3)]  # fmt: skip

    # fixed in Harvest: the rate is set, the entry is billed, the breaches no longer hold and their causes close
    harvest.update_entry(int(no_rate), billable_rate=150.0)
    _sync_and_draft(run_dag)
    _compare(run_dag, day2 + timedelta(days=2), period)
    assert warehouse.scalar(
        """SELECT count(*) FROM closeout.pilot_breaches b JOIN closeout.pilot_comparison_runs r USING (run_id)
           WHERE r.compared_on = %s""", (day2 + timedelta(days=2),)) == 0  # fmt: skip
    assert warehouse.scalar(
        "SELECT count(*) FROM closeout.alert_causes WHERE dag_id = 'closeout_pilot_compare' AND resolved_at IS NULL"
    ) == 0
    assert warehouse.scalar(
        """SELECT status FROM closeout.pilot_comparisons WHERE client_key = %s AND compared_on = %s""",
        (a, day2 + timedelta(days=2))) == "match"  # fmt: skip
    assert len(_alerts(platform, smtp, hook_receiver)) == 6
