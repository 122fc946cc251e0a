"""Segregation of duties on payout batches (issue 15 item 6), through real DAG runs and the real Airflow REST API:
the approval is assigned to the finance group less the person who triggered the run; a trigger asking for no
approval still waits for someone else; the request shows payees, amounts and totals per currency; every answer
is in closeout.decisions; switching the approval off is the deployment's setting and recorded on the run. The
DAG runs as a login in ``closeout_pipeline``, the role a deployment gives it."""

from __future__ import annotations

import threading
import time
from decimal import Decimal as D
from typing import Any

import pytest
import requests
from controls_support import FINANCE, OUTSIDER, REQUESTER, PeopleApi, conn_json_as, lenient_api, login_in, people_api
from payouts_support import check_invariant_6, green_recon, pay, payees_file, seed_invoices

pytestmark = pytest.mark.integration
people_api, lenient_api = people_api, lenient_api  # the fixtures

DAG_ID = "closeout_payouts"
WORK = {c: [("u1", D("1.00")), ("u2", D("2.00"))] for c in "ab"}  # u1: 2 x 50.00 USD, u2: 2 x 80.00 EUR
WAIT = 300.0


class Finance(threading.Thread):
    """Waits for the payouts approval in Required Actions, lets each of ``tries`` answer in turn through
    ``PATCH .../hitlDetails`` (noting the HTTP status each got), and fails the run through the API if anything
    goes wrong so that ``dag.test`` returns."""

    def __init__(self, api: PeopleApi, tries: list[tuple[str, str]], look: Any = None) -> None:
        super().__init__(daemon=True)
        self.api, self.tries, self.look = api, tries, look
        self.request: dict[str, Any] = {}
        self.statuses: list[tuple[str, int]] = []
        self.seen: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        run_id = None
        try:
            self.request = self._pending()
            run_id = self.request["task_instance"]["dag_run_id"]
            self.seen = self.look() if self.look else None
            url = f"{self.api.url}/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/approve/-1/hitlDetails"
            for user, choice in self.tries:
                response = requests.patch(url, json={"chosen_options": [choice]}, headers=self.api.headers(user),
                                          timeout=30)  # fmt: skip
                self.statuses.append((user, response.status_code))
        except BaseException as exc:
            self.error = exc
        finally:
            if self.error is not None or not any(code == 200 for _, code in self.statuses):
                self._fail(run_id)

    def _pending(self) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            response = requests.get(f"{self.api.url}/api/v2/dags/{DAG_ID}/dagRuns/~/hitlDetails",
                                    params={"response_received": "false", "task_id": "approve"},
                                    headers=self.api.headers(FINANCE[0]), timeout=30)  # fmt: skip
            assert response.status_code == 200, response.text
            pending = [d for d in response.json()["hitl_details"] if not d["response_received"]]
            if pending:
                return pending[0]
            time.sleep(1)
        raise AssertionError(f"no payouts approval appeared within {WAIT}s")

    def _fail(self, run_id: str | None) -> None:
        headers = self.api.headers(FINANCE[0])
        listed = requests.get(f"{self.api.url}/api/v2/dags/{DAG_ID}/dagRuns", params={"state": "running"},
                              headers=headers, timeout=30).json().get("dag_runs", [])  # fmt: skip
        for run in {run_id, *(r["dag_run_id"] for r in listed)} - {None}:
            requests.patch(f"{self.api.url}/api/v2/dags/{DAG_ID}/dagRuns/{run}", json={"state": "failed"},
                           headers=headers, timeout=30)  # fmt: skip


@pytest.fixture
def books(warehouse, stripe_sandbox, tmp_path, monkeypatch):
    """Four items in one batch, paid invoices, a green reconciliation; then the DAG's warehouse connection is a
    login in closeout_pipeline (seeding ran as the owner, like the other stages would have)."""
    path = payees_file(tmp_path, {"u1": ("50.00", "USD", "acct_1U1Seg"), "u2": ("40.00", "EUR", "acct_1U2Seg")})
    monkeypatch.setenv("CLOSEOUT_PAYEES_CONFIG", str(path))
    monkeypatch.delenv("CLOSEOUT_PAYOUTS_APPROVAL", raising=False)
    monkeypatch.setenv("CLOSEOUT_FINANCE_APPROVERS", f"{REQUESTER}, {FINANCE[0]}")  # the requester is in finance
    invoices = seed_invoices(warehouse, WORK)
    pay(stripe_sandbox, invoices, list(WORK))
    green_recon()
    with login_in("closeout_pipeline") as pipeline:
        monkeypatch.setenv("AIRFLOW_CONN_CLOSEOUT_WAREHOUSE", conn_json_as(pipeline))
        yield invoices


def test_a_trigger_with_approval_false_still_waits_for_someone_else(
    warehouse, stripe_sandbox, run_dag, people_api, books
):
    person = Finance(people_api, [(REQUESTER, "Approve"), (OUTSIDER, "Approve"), (FINANCE[0], "Approve")],
                     look=lambda: stripe_sandbox.count("transfer"))  # fmt: skip
    person.start()
    result = run_dag(DAG_ID, {"approval": False})  # a trigger parameter cannot switch the control off
    person.join(60)
    if person.error is not None:
        raise person.error

    assert person.seen == 0  # it waited: nothing went out before the answer
    # the requester and an outsider are refused by the API server; a finance person other than the requester answers
    assert person.statuses == [(REQUESTER, 403), (OUTSIDER, 403), (FINANCE[0], 200)]
    assert person.request["assigned_users"] == [{"id": FINANCE[0], "name": FINANCE[0]}]
    # what finance is asked to approve: payees, amounts and totals per currency
    assert "160.00 EUR (2 items), 100.00 USD (2 items)" in person.request["subject"]
    body = person.request["body"]
    assert "- U1 (harvest:u1): 100.00 USD (2 items)" in body and "- U2 (harvest:u2): 160.00 EUR (2 items)" in body
    assert "Totals per currency: 160.00 EUR (2 items), 100.00 USD (2 items)." in body

    assert result.state == "success", result
    assert stripe_sandbox.count("transfer") == 4
    (batch,) = [r[0] for r in warehouse.rows("SELECT batch_id FROM closeout.payout_batches")]
    assert batch in body
    assert warehouse.rows("SELECT approved_by, status FROM closeout.payout_batches") == [
        (f"approval: {FINANCE[0]}", "released")]  # fmt: skip
    assert warehouse.rows("SELECT kind, subject, requested_by, decided_by, outcome FROM closeout.decisions") == [
        ("payout_batch", batch, REQUESTER, FINANCE[0], "approved")]  # fmt: skip
    assert warehouse.scalar("SELECT counts->>'approval' FROM closeout.payout_runs WHERE step = 'release'") == (
        "required")
    check_invariant_6(warehouse, stripe_sandbox)


def test_a_rejection_is_a_recorded_decision(warehouse, stripe_sandbox, run_dag, people_api, books):
    person = Finance(people_api, [(FINANCE[0], "Reject")])
    person.start()
    result = run_dag(DAG_ID)
    person.join(60)
    if person.error is not None:
        raise person.error
    assert result.state == "success" and result.task_states["release"] == "skipped", result
    assert stripe_sandbox.count("transfer") == 0
    assert warehouse.rows("SELECT requested_by, decided_by, outcome FROM closeout.decisions") == [
        (REQUESTER, FINANCE[0], "rejected")]  # fmt: skip


def test_no_approver_but_the_requester_means_no_release(warehouse, stripe_sandbox, run_dag, books, monkeypatch):
    monkeypatch.setenv("CLOSEOUT_FINANCE_APPROVERS", REQUESTER)
    result = run_dag(DAG_ID)
    assert result.state == "failed", result
    assert result.task_states["approve"] == "failed" and result.task_states["release"] == "upstream_failed", result
    assert stripe_sandbox.count("transfer") == 0
    assert warehouse.scalar("SELECT approved_at FROM closeout.payout_batches") is None


def test_switching_the_approval_off_is_the_deployments_and_is_recorded(
    warehouse, stripe_sandbox, run_dag, books, monkeypatch
):
    monkeypatch.setenv("CLOSEOUT_PAYOUTS_APPROVAL", "off")
    result = run_dag(DAG_ID, {"approval": True})  # nor can a trigger parameter switch it on: it is not one
    assert result.state == "success", result
    assert result.task_states["approve"] == "skipped", result
    assert stripe_sandbox.count("transfer") == 4
    assert warehouse.scalar("SELECT counts->>'approval' FROM closeout.payout_runs WHERE step = 'release'") == (
        "off (CLOSEOUT_PAYOUTS_APPROVAL=off)")
    (batch,) = [r[0] for r in warehouse.rows("SELECT batch_id FROM closeout.payout_batches")]
    assert warehouse.rows("SELECT subject, requested_by, decided_by, outcome, reason FROM closeout.decisions") == [
        (batch, REQUESTER, "auto: approval switched off", "not_required",
         "approval off (CLOSEOUT_PAYOUTS_APPROVAL=off)")]  # fmt: skip


def test_an_answer_the_auth_manager_lets_through_is_checked_again_refused_and_recorded(
    warehouse, stripe_sandbox, run_dag, lenient_api, books
):
    """With an auth manager that lets anyone answer (simple auth manager, all admins: every request is its
    anonymous admin), an Approve from outside the finance group reaches the task: closeout checks the answer
    again, refuses it, records the refusal, fails the task and releases nothing."""
    person = Finance(lenient_api, [(REQUESTER, "Approve")])
    person.start()
    result = run_dag(DAG_ID)
    person.join(60)
    if person.error is not None:
        raise person.error
    assert person.statuses == [(REQUESTER, 200)]  # the API server let it through
    assert result.state == "failed", result
    assert result.task_states["approve"] == "failed" and result.task_states["release"] == "upstream_failed", result
    assert stripe_sandbox.count("transfer") == 0
    assert warehouse.scalar("SELECT approved_at FROM closeout.payout_batches") is None
    (batch,) = [r[0] for r in warehouse.rows("SELECT batch_id FROM closeout.payout_batches")]
    assert warehouse.rows("SELECT subject, requested_by, decided_by, outcome, reason FROM closeout.decisions") == [
        (batch, REQUESTER, "Anonymous", "refused", "Anonymous is not a finance approver (CLOSEOUT_FINANCE_APPROVERS)")
    ]


def test_the_answer_check_refuses_the_requester_and_outsiders(monkeypatch) -> None:
    """The same check on the requester's own answer (what the task does when an auth manager lets it through)."""
    from closeout.payouts import approval

    monkeypatch.setenv("CLOSEOUT_FINANCE_APPROVERS", f"{REQUESTER}, {FINANCE[0]}")
    with pytest.raises(approval.ApprovalRefused, match="triggered this run and cannot approve it"):
        approval.check_answer(REQUESTER, REQUESTER.upper())
    with pytest.raises(approval.ApprovalRefused, match="not a finance approver"):
        approval.check_answer(REQUESTER, OUTSIDER)
    with pytest.raises(approval.ApprovalRefused, match="names no user"):
        approval.check_answer(REQUESTER, "")
    approval.check_answer(REQUESTER, FINANCE[0])
    assert approval.assignees(REQUESTER) == [FINANCE[0]]
    monkeypatch.setenv("CLOSEOUT_FINANCE_APPROVERS", REQUESTER)
    with pytest.raises(approval.ApprovalRefused, match="triggered this run and cannot approve it; add another"):
        approval.assignees(REQUESTER)
