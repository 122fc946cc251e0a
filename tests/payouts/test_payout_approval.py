"""closeout_payouts with approval on, answered the way finance answers it: a real ``airflow api-server`` sharing
the test's metadata database serves the Required Actions (Human-in-the-loop) REST API; a person lists the
pending approval, reads it and approves or rejects it while ``dag.test`` waits at ``approve`` (Airflow 3.3 parks
the ApprovalOperator in ``awaiting_input``; the API's response resumes it, no triggerer involved).

Approve: nothing is transferred before the answer, everything after it, and the batches record who approved.
Reject: nothing is transferred, the batches wait, and the next run's approval releases them."""

from __future__ import annotations

import sys
import threading
import time
from datetime import datetime
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
import requests
from payouts_support import check_invariant_6, green_recon, pay, payees_file, seed_invoices

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gate"))
import gate_support
from gate_support import API_USER, ApiServer

api_server = gate_support.api_server  # the shared API server fixture

pytestmark = pytest.mark.integration

DAG_ID = "closeout_payouts"
WORK = {c: [("u1", D("1.00")), ("u2", D("2.00"))] for c in "ab"}  # four items, one batch
ANSWER_WITHIN = 300.0


class FinancePerson(threading.Thread):
    """Waits for the payouts approval to appear in the API server's Required Actions, notes what was paid out
    at that moment (``look``), then answers ``choice`` through ``PATCH .../hitlDetails``. If anything goes wrong
    it fails the waiting run through the API, so ``dag.test`` returns instead of waiting for ever."""

    def __init__(self, api: ApiServer, choice: str, look: Any) -> None:
        super().__init__(daemon=True)
        self.api, self.choice, self.look = api, choice, look
        self.request: dict[str, Any] = {}
        self.seen: dict[str, Any] = {}
        self.answer: dict[str, Any] = {}
        self.error: BaseException | None = None

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api.token()}"}

    def run(self) -> None:
        run_id = None
        try:
            self.request = self._pending_approval()
            run_id = self.request["task_instance"]["dag_run_id"]
            self.seen = self.look(self.api, self._headers(), run_id)
            response = requests.patch(
                f"{self.api.url}/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/approve/-1/hitlDetails",
                json={"chosen_options": [self.choice]},
                headers=self._headers(),
                timeout=30,
            )
            assert response.status_code == 200, response.text
            self.answer = response.json()
        except BaseException as exc:
            self.error = exc
            self._fail_waiting_runs(run_id)

    def _pending_approval(self) -> dict[str, Any]:
        deadline = time.monotonic() + ANSWER_WITHIN
        while time.monotonic() < deadline:
            response = requests.get(
                f"{self.api.url}/api/v2/dags/{DAG_ID}/dagRuns/~/hitlDetails",
                params={"response_received": "false", "task_id": "approve"},
                headers=self._headers(),
                timeout=30,
            )
            assert response.status_code == 200, response.text
            pending = [d for d in response.json()["hitl_details"] if not d["response_received"]]
            if pending:
                assert len(pending) == 1, pending
                return pending[0]
            time.sleep(1)
        raise AssertionError(f"no payouts approval appeared in Required Actions within {ANSWER_WITHIN}s")

    def _fail_waiting_runs(self, run_id: str | None) -> None:
        listed = requests.get(f"{self.api.url}/api/v2/dags/{DAG_ID}/dagRuns", params={"state": "running"},
                              headers=self._headers(), timeout=30).json().get("dag_runs", [])  # fmt: skip
        for run in {run_id, *(r["dag_run_id"] for r in listed)} - {None}:
            requests.patch(f"{self.api.url}/api/v2/dags/{DAG_ID}/dagRuns/{run}", json={"state": "failed"},
                           headers=self._headers(), timeout=30)  # fmt: skip


@pytest.fixture
def books(warehouse, stripe_sandbox, tmp_path, monkeypatch):
    path = payees_file(tmp_path, {"u1": ("50.00", "USD", "acct_1U1Approve"), "u2": ("40.00", "EUR", "acct_1U2App")})
    monkeypatch.setenv("CLOSEOUT_PAYEES_CONFIG", str(path))
    monkeypatch.delenv("CLOSEOUT_PAYOUTS_APPROVAL", raising=False)  # on: the deployment's setting, not a param
    monkeypatch.setenv("CLOSEOUT_FINANCE_APPROVERS", API_USER)  # the approval is assigned to finance (tests/controls)
    invoices = seed_invoices(warehouse, WORK)
    pay(stripe_sandbox, invoices, list(WORK))
    green_recon()
    return invoices


def _run_answered(run_dag, api: ApiServer, choice: str, look: Any) -> tuple[Any, FinancePerson]:
    person = FinancePerson(api, choice, look)
    person.start()
    result = run_dag(DAG_ID)
    person.join(60)
    if person.error is not None:
        raise person.error
    return result, person


def _looker(warehouse, stripe_sandbox):
    def look(api: ApiServer, headers: dict[str, str], run_id: str) -> dict[str, Any]:
        release = requests.get(f"{api.url}/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/release",
                               headers=headers, timeout=30)  # fmt: skip
        assert release.status_code == 200, release.text
        return {
            "transfers": stripe_sandbox.count("transfer"),
            "batches": warehouse.rows("SELECT status, approved_by FROM closeout.payout_batches"),
            "release_runs": warehouse.scalar("SELECT count(*) FROM closeout.payout_runs WHERE step = 'release'"),
            "release_state": release.json()["state"],
        }

    return look


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_release_waits_for_the_approval_and_follows_it(warehouse, stripe_sandbox, run_dag, books, api_server):
    result, person = _run_answered(run_dag, api_server, "Approve", _looker(warehouse, stripe_sandbox))

    assert "approve 1 batches: 160.00 EUR (2 items), 100.00 USD (2 items)" in person.request["subject"]
    (batch,) = [r[0] for r in warehouse.rows("SELECT batch_id FROM closeout.payout_batches")]
    assert batch in person.request["body"]
    # while the approval was pending nothing went out, and the release had not started
    assert person.seen == {"transfers": 0, "batches": [("awaiting_approval", None)], "release_runs": 0,
                           "release_state": None}  # fmt: skip

    assert result.state == "success", result
    assert (result.task_states["approve"], result.task_states["release"]) == ("success", "success"), result
    assert stripe_sandbox.count("transfer") == 4
    approved_at, approved_by, status = warehouse.rows(
        "SELECT approved_at, approved_by, status FROM closeout.payout_batches")[0]  # fmt: skip
    assert (approved_by, status) == (f"approval: {API_USER}", "released")
    assert person.answer["responded_by"]["name"] == API_USER
    assert approved_at >= _when(person.answer["responded_at"])
    released_at = warehouse.scalar("SELECT min(started_at) FROM closeout.payout_runs WHERE step = 'release'")
    assert released_at >= _when(person.answer["responded_at"])
    check_invariant_6(warehouse, stripe_sandbox)


def test_a_rejection_releases_nothing_and_the_next_approval_releases_the_batch(
    warehouse, stripe_sandbox, run_dag, books, api_server
):
    look = _looker(warehouse, stripe_sandbox)
    result, person = _run_answered(run_dag, api_server, "Reject", look)

    assert person.seen["transfers"] == 0 and person.seen["release_state"] is None
    assert result.state == "success", result  # a rejection is an answer, not a failure
    assert result.task_states["approve"] == "success", result
    assert result.task_states["release"] == "skipped", result
    assert stripe_sandbox.count("transfer") == 0
    assert warehouse.rows("SELECT status, approved_by, pending FROM closeout.payout_batches") == [
        ("awaiting_approval", None, 4)]  # fmt: skip
    assert warehouse.scalar("SELECT count(*) FROM closeout.payout_runs WHERE step = 'release'") == 0
    # the cost is in the books (accrued), nothing is paid
    kinds = dict(warehouse.rows(
        """SELECT kind, count(*) FROM closeout.ledger_journals
           WHERE kind IN ('payout_accrual', 'payout_transfer') GROUP BY kind"""))  # fmt: skip
    assert kinds == {"payout_accrual": 4}

    again, second = _run_answered(run_dag, api_server, "Approve", look)
    assert second.seen["transfers"] == 0
    assert again.state == "success", again
    assert stripe_sandbox.count("transfer") == 4
    assert warehouse.rows("SELECT status, approved_by FROM closeout.payout_batches") == [
        ("released", f"approval: {API_USER}")]  # fmt: skip
    check_invariant_6(warehouse, stripe_sandbox)
