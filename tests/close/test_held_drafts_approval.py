"""Segregation of duties on held drafts in the month-end close (issue 15 item 6), through real close runs
(``dag.test``) answered through the real Airflow REST API by identified people, the DAG running as a login in
``closeout_pipeline``: the approval is assigned to the finance group less the person who triggered the close; a
trigger asking for no approval still waits; the requester's answer is refused (403) and the request keeps waiting;
another finance person's answer is one closeout.decisions row per draft with both names; a rejection keeps the
drafts held with their decisions; an answer an auth manager lets through is checked again and refused; switching
the approval off is the deployment's setting, recorded on the close run; a close with no held drafts does not
wait; the pipeline's role cannot write the decision nor approve a draft as its own requester."""

from __future__ import annotations

import json
import sys
from datetime import date, timedelta
from decimal import Decimal as D
from pathlib import Path

import psycopg
import pytest
from closeout.close import approval
from closeout.close.params import read_params
from closeout.warehouse.db import connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "controls"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from billing_support import Books, Entry
from close_approval_support import Answerer
from controls_support import (
    FINANCE,
    OUTSIDER,
    REQUESTER,
    PeopleApi,
    conn_json_as,
    connect_as,
    lenient_api,
    login_in,
    people_api,
)
from payments_support import check_invariant_3, last_month

from sandbox.harvest import generate_dataset

pytestmark = pytest.mark.integration
people_api, lenient_api = people_api, lenient_api  # the fixtures

DAG_ID = "closeout_month_end_close"
PERIOD_START = last_month()
PERIOD = PERIOD_START.strftime("%Y-%m")
NEXT_START = (PERIOD_START.replace(day=28) + timedelta(days=4)).replace(day=1)
CONF = {"period": PERIOD, "trackers": ["harvest"], "publish_policy": "auto"}


@pytest.fixture
def close_books(warehouse, harvest, stripe_sandbox, tmp_path, monkeypatch):
    """Two clients (USD, EUR) with ~10 weeks of time in Harvest, both held for approval (publish_policy hold);
    finance is the requester and ana; the close's warehouse connection is a login in closeout_pipeline."""
    harvest.load(generate_dataset(160, seed=3, anchor=date.today(), days=70, n_clients=2))
    config = tmp_path / "clients.yaml"
    config.write_text("defaults:\n  require_approval: false\n  publish_policy: hold\nclients: []\n")
    for var, value in {"CLOSEOUT_BILLING_CONFIG": config, "CLOSEOUT_EXPORT_DIR": tmp_path / "exports",
                       "CLOSEOUT_DATA_DOCS_DIR": tmp_path / "docs",
                       "CLOSEOUT_REPORTS_URL": tmp_path / "reports"}.items():  # fmt: skip
        monkeypatch.setenv(var, str(value))
    monkeypatch.setenv("CLOSEOUT_FINANCE_APPROVERS", f"{REQUESTER}, {FINANCE[0]}")  # the requester is in finance
    monkeypatch.delenv(approval.APPROVAL_ENV, raising=False)
    with login_in("closeout_pipeline") as pipeline:
        monkeypatch.setenv("AIRFLOW_CONN_CLOSEOUT_WAREHOUSE", conn_json_as(pipeline))
        yield config


def _answered(run_dag, api: PeopleApi, tries: list[tuple[str, str]], conf: dict, look=None) -> tuple:
    person = Answerer(api.url, api.headers, FINANCE[0], tries, look=look)
    person.start()
    result = run_dag(DAG_ID, conf)
    person.finish()
    return result, person


def _unwaited(run_dag, api: PeopleApi, conf: dict):
    """A close that must not wait: a watchdog ends the run if a request appears (and the test fails)."""
    watchdog = Answerer(api.url, api.headers, FINANCE[0], [])
    watchdog.start()
    result = run_dag(DAG_ID, conf)
    watchdog.stop()
    assert watchdog.error is None and watchdog.request == {}, ("the close waited for an approval", watchdog.request)
    return result


def _held(warehouse) -> list[tuple]:
    return warehouse.rows(
        """SELECT invoice_id, status, approved_by, approved_version = version, currency, total_minor
           FROM closeout.invoices WHERE period_start >= %s AND status <> 'void' AND total_minor > 0
             AND period_start < %s ORDER BY invoice_id""",
        (PERIOD_START, NEXT_START),
    )


def _step(warehouse, run_id: str) -> dict:
    steps = warehouse.scalar("SELECT steps FROM closeout.period_closes WHERE airflow_run_id = %s", (run_id,))
    return steps[approval.STEP]


def test_the_requester_cannot_approve_and_another_finance_person_does(
    warehouse, stripe_sandbox, run_dag, people_api, close_books
) -> None:
    result, person = _answered(
        run_dag, people_api, [(REQUESTER, "Approve"), (OUTSIDER, "Approve"), (FINANCE[0], "Approve")],
        {**CONF, "approval": False},  # a trigger parameter cannot switch the control off
        look=lambda: (stripe_sandbox.count("invoice"), warehouse.scalar("SELECT count(*) FROM closeout.decisions")),
    )  # fmt: skip

    assert person.seen == (0, 0), "it waited: nothing published, nothing decided before the answer"
    # the requester and an outsider are refused by the API server and the request keeps waiting; ana answers
    assert person.statuses == [(REQUESTER, 403), (OUTSIDER, 403), (FINANCE[0], 200)]
    assert person.pending_after == [True, True, False]
    assert person.request["assigned_users"] == [{"id": FINANCE[0], "name": FINANCE[0]}]
    assert result.state == "success", result

    held = _held(warehouse)
    assert len(held) >= 2 and {c for *_, c, _ in held} == {"USD", "EUR"}, held
    # what finance was asked: each held draft with client, period, amount and why held; totals per currency
    body = person.request["body"]
    for invoice_id, *_ in held:
        line = next(line for line in body.splitlines() if line.startswith(f"- {invoice_id} "))
        assert f"{PERIOD_START.isoformat()} to " in line and "held because the client's publish policy is hold" in line
    assert f"approve {len(held)} held drafts" in person.request["subject"]
    assert "Totals per currency: " in body

    # approved by ana, published, and one decision per draft naming who asked and who decided
    assert {(status, by, same) for _, status, by, same, *_ in held} == {("open", f"approval: {FINANCE[0]}", True)}
    decisions = warehouse.rows(
        "SELECT kind, subject, requested_by, decided_by, outcome FROM closeout.decisions ORDER BY subject")
    assert decisions == [("held_drafts", invoice_id, REQUESTER, FINANCE[0], "approved") for invoice_id, *_ in held]
    step = _step(warehouse, result.run_id)
    assert step["status"] == "succeeded" and step["summary"]["approval"] == "required"
    assert (step["summary"]["requested_by"], step["summary"]["decided_by"]) == (REQUESTER, FINANCE[0])
    ids = dict(warehouse.rows("SELECT subject, decision_id FROM closeout.decisions"))
    assert step["summary"]["decisions"] == ids
    check_invariant_3(warehouse, stripe_sandbox)


def test_a_rejection_keeps_the_drafts_held_with_the_decision_linked(
    warehouse, stripe_sandbox, run_dag, people_api, close_books
) -> None:
    result, person = _answered(run_dag, people_api, [(FINANCE[0], "Reject")], CONF)
    assert person.statuses == [(FINANCE[0], 200)]
    assert result.state == "success", result  # a rejection is an answer: the close goes on without those drafts
    assert result.task_states["approve_held_drafts"] == "success" and result.task_states["publish"] == "success"
    held = _held(warehouse)
    assert held and {(status, by) for _, status, by, *_ in held} == {("draft", None)}, held
    assert stripe_sandbox.count("invoice") == 0
    linked = warehouse.rows(
        """SELECT i.invoice_id, d.requested_by, d.decided_by, d.outcome, (d.airflow_ref->>'version')::int = i.version
           FROM closeout.invoices i JOIN closeout.decisions d ON d.kind = 'held_drafts' AND d.subject = i.invoice_id
           ORDER BY i.invoice_id""")  # fmt: skip
    assert linked == [(invoice_id, REQUESTER, FINANCE[0], "rejected", True) for invoice_id, *_ in held]
    step = _step(warehouse, result.run_id)["summary"]
    assert (step["outcome"], step["approved"], step["rejected"]) == ("rejected", 0, len(held))


def test_an_answer_the_auth_manager_lets_through_is_checked_again_refused_and_recorded(
    warehouse, stripe_sandbox, run_dag, lenient_api, close_books
) -> None:
    """With an auth manager that lets anyone answer (every request is its anonymous admin), the close checks the
    answer itself: refused, recorded per draft, the close fails and nothing held is approved or published."""
    result, person = _answered(run_dag, lenient_api, [(REQUESTER, "Approve")], CONF)
    assert person.statuses == [(REQUESTER, 200)]
    assert result.state == "failed", result
    assert result.task_states["approve_held_drafts"] == "failed", result
    assert result.task_states["publish"] == "upstream_failed", result
    assert stripe_sandbox.count("invoice") == 0
    held = _held(warehouse)
    assert held and {(status, by) for _, status, by, *_ in held} == {("draft", None)}, held
    assert warehouse.rows("SELECT DISTINCT requested_by, decided_by, outcome, reason FROM closeout.decisions") == [
        (REQUESTER, "Anonymous", "refused", "Anonymous is not a finance approver (CLOSEOUT_FINANCE_APPROVERS)")]
    assert warehouse.scalar("SELECT count(*) FROM closeout.decisions") == len(held)
    assert _step(warehouse, result.run_id)["status"] == "failed"


def test_switching_the_approval_off_is_the_deployments_and_is_recorded_on_the_run(
    warehouse, stripe_sandbox, run_dag, people_api, close_books, monkeypatch
) -> None:
    monkeypatch.setenv(approval.APPROVAL_ENV, "off")
    result = _unwaited(run_dag, people_api, {**CONF, "approval": True})  # nor can a trigger switch it on
    assert result.state == "success", result
    setting = "off (CLOSEOUT_HELD_DRAFTS_APPROVAL=off)"
    step = _step(warehouse, result.run_id)["summary"]
    assert (step["approval"], step["outcome"], step["asked"]) == (setting, "not_required", False)
    held = _held(warehouse)
    assert held and {(status, by) for _, status, by, *_ in held} == {("open", approval.SWITCHED_OFF_BY)}, held
    assert warehouse.rows("SELECT DISTINCT requested_by, decided_by, outcome, reason FROM closeout.decisions") == [
        (REQUESTER, approval.SWITCHED_OFF_BY, "not_required", f"approval {setting}")]
    check_invariant_3(warehouse, stripe_sandbox)


def test_a_close_with_no_held_drafts_does_not_wait(
    warehouse, stripe_sandbox, run_dag, people_api, close_books
) -> None:
    close_books.write_text("defaults:\n  require_approval: false\n  publish_policy: auto\nclients: []\n")
    result = _unwaited(run_dag, people_api, CONF)
    assert result.state == "success", result
    assert result.task_states["approve_held_drafts"] == "success", result
    step = _step(warehouse, result.run_id)["summary"]
    assert (step["asked"], step["held"], step["why_not_asked"]) == (False, 0, "no held drafts in the period")
    assert warehouse.scalar("SELECT count(*) FROM closeout.decisions") == 0
    assert {status for _, status, *_ in _held(warehouse)} == {"open"}


# -- the warehouse side, without Airflow --------------------------------------------------------------------------
def _held_drafts(warehouse) -> list[approval.HeldDraft]:
    """Two held drafts (USD and EUR) of October 2026 built by the real drafting, committed by the owner."""
    with connect() as conn:
        books = Books(conn)
        books.configure({"defaults": {"require_approval": False, "publish_policy": "hold"}, "clients": []})
        books.put(Entry("1", hours=D("1.50")), Entry("2", client="c2", currency="EUR", rate=D("80.00")))
        books.draft()
        conn.commit()
        drafts = approval.held_drafts(conn, read_params({"period": "2026-10"}, today=date(2026, 12, 1)))
    assert [(d.client_key, d.currency, d.total_minor) for d in drafts] == [("harvest:c1", "USD", 15000),
                                                                          ("harvest:c2", "EUR", 8000)], drafts
    return drafts


def test_what_finance_is_shown_for_held_drafts(warehouse) -> None:
    drafts = _held_drafts(warehouse)
    subject, body = approval.request_text(drafts, "2026-10", 7)
    assert subject == "closeout close 2026-10: approve 2 held drafts: 80.00 EUR (1 drafts), 150.00 USD (1 drafts)"
    assert f"- {drafts[0].invoice_id} v1: harvest:c1, 2026-10-01 to 2026-10-31: 150.00 USD; held because the " \
           "client's publish policy is hold; this draft was never approved" in body  # fmt: skip
    assert "close run 7" in body and "cannot approve it" in body


def test_the_pipeline_role_cannot_write_the_decision_nor_approve_as_the_requester(warehouse) -> None:
    drafts = _held_drafts(warehouse)
    payload = json.dumps([{"invoice_id": d.invoice_id, "version": d.version} for d in drafts])
    with login_in("closeout_pipeline") as pipeline, connect_as(pipeline) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("""INSERT INTO closeout_data.decisions (kind, subject, requested_by, decided_by, outcome)
                            VALUES ('held_drafts', %s, 'dag_test', 'ana', 'approved')""", (drafts[0].invoice_id,))
        conn.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT closeout_data.record_decision('held_drafts', %s, 'dag_test', 'ana', 'approved', "
                         "NULL, '{}')", (drafts[0].invoice_id,))  # fmt: skip
        conn.rollback()
        # the one way it may record a decision refuses an approval by the requester (invariant 11) ...
        with pytest.raises(psycopg.errors.CheckViolation, match="decisions_other_person"):
            approval.record(conn, drafts, requested_by="dag_test", decided_by="DAG_TEST ", outcome="approved")
        conn.rollback()
        # ... and one with nobody asking; a version the approver was not shown is not approved either
        with pytest.raises(psycopg.errors.CheckViolation, match="decisions_other_person"):
            conn.execute("SELECT * FROM closeout_data.record_held_drafts_decision(%s::jsonb, NULL, 'ana', "
                         "'approved', NULL, '{}')", (payload,))  # fmt: skip
        conn.rollback()
        stale = [approval.HeldDraft(**{**drafts[0].as_dict(), "version": 9})]
        with pytest.raises(psycopg.errors.RaiseException, match="not the draft version 9"):
            approval.record(conn, stale, requested_by="dag_test", decided_by="ana", outcome="approved")
        conn.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE closeout_data.decisions SET decided_by = 'ana'")
        conn.rollback()
    assert warehouse.scalar("SELECT count(*) FROM closeout.decisions") == 0
    assert warehouse.scalar("SELECT count(*) FROM closeout.invoices WHERE approved_by IS NOT NULL") == 0

    with login_in("closeout_pipeline") as pipeline, connect_as(pipeline) as conn:  # another person: recorded
        ids = approval.record(conn, drafts, requested_by="dag_test", decided_by="ana", outcome="approved",
                              ref={"close_run_id": 1})  # fmt: skip
    assert sorted(ids) == sorted(d.invoice_id for d in drafts)
    assert warehouse.rows("SELECT approved_by, approval_note FROM closeout_data.invoices ORDER BY invoice_id") == [
        ("approval: ana", f"decision {ids[invoice_id]} (closeout.decisions)") for invoice_id in sorted(ids)]


def test_no_answer_in_time_fails_the_step_so_the_close_run_does_not_stay_running(warehouse) -> None:
    """The HITL response timeout (the close's task timeout) resumes the task with an error: the close run records the
    step as failed (a 'running' close would block every other close), and the task fails; nothing is decided."""
    from airflow.providers.standard.exceptions import HITLTimeoutError
    from closeout.close import runs
    from closeout.close.approval_operator import HeldDraftsApprovalOperator

    with connect() as conn:
        run = runs.begin(conn, "2026-10", "manual__timeout", dry_run=False, params={"period": "2026-10"})
    operator = HeldDraftsApprovalOperator(task_id=approval.STEP)
    with pytest.raises(HITLTimeoutError):
        operator.execute_complete(context={"run_id": "manual__timeout"},
                                  event={"error": "timed out", "error_type": "timeout"})  # fmt: skip
    status, steps = warehouse.rows("SELECT status, steps FROM closeout.period_closes WHERE close_run_id = %s",
                                   (run.close_run_id,))[0]  # fmt: skip
    assert status == "failed" and steps[approval.STEP]["status"] == "failed"
    assert "no answer (timeout): the held drafts stay held" in steps[approval.STEP]["error"]
    assert warehouse.scalar("SELECT count(*) FROM closeout.decisions") == 0


def test_with_no_approver_but_the_requester_the_step_fails_and_nothing_is_approved(warehouse, monkeypatch) -> None:
    from types import SimpleNamespace

    from airflow.sdk.exceptions import AirflowFailException
    from closeout.close import runs
    from closeout.close.approval_operator import HeldDraftsApprovalOperator

    drafts = _held_drafts(warehouse)
    monkeypatch.setenv("CLOSEOUT_FINANCE_APPROVERS", REQUESTER)
    monkeypatch.delenv(approval.APPROVAL_ENV, raising=False)
    params = {"period": "2026-10", "publish_policy": "auto", "trackers": ["harvest"], "dry_run": False}
    with connect() as conn:
        run = runs.begin(conn, "2026-10", "manual__alone", dry_run=False, params=params)
    operator = HeldDraftsApprovalOperator(task_id=approval.STEP)
    context = {"run_id": "manual__alone", "dag_run": SimpleNamespace(triggering_user_name=REQUESTER)}
    with pytest.raises(AirflowFailException, match=r"held drafts approval: the only finance approver configured "
                                                   r"\(dag_test\) triggered this run and cannot approve it"):
        operator.execute(context)
    status, steps = warehouse.rows("SELECT status, steps FROM closeout.period_closes WHERE close_run_id = %s",
                                   (run.close_run_id,))[0]  # fmt: skip
    assert status == "failed" and steps[approval.STEP]["status"] == "failed", steps
    assert [d["invoice_id"] for d in steps[approval.STEP]["progress"]["asking"]] == [d.invoice_id for d in drafts]
    assert warehouse.scalar("SELECT count(*) FROM closeout.decisions") == 0
    assert warehouse.scalar("SELECT count(*) FROM closeout.invoices WHERE approved_by IS NOT NULL") == 0
