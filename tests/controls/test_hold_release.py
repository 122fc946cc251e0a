"""Releasing a payout hold is a decision by an identified person: ``python -m closeout.gate release`` takes who
from the person's own Airflow token (the real API server says whose it is), accepts only the finance group, and
runs on a finance login; the pipeline's login is refused by the database, the hold's causer by the function."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from closeout.gate.holds import open_hold
from closeout.warehouse.db import connect
from controls_support import FINANCE, OUTSIDER, REQUESTER, conn_json_as, login_in, people_api

pytestmark = pytest.mark.integration
people_api = people_api  # the fixture


def _release(env: dict[str, str], hold_id: int, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "closeout.gate", "release", "--hold-id", str(hold_id), "--why", "AR explained", *extra],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip


@pytest.fixture
def hold(warehouse) -> int:
    with connect() as conn:
        opened, _ = open_hold(conn, recon_run_id="recon-9", check_name="ar_vs_open_invoices", period="2026-11",
                              reason="AR differs", caused_by=FINANCE[1])  # fmt: skip
    return opened.hold_id


def test_only_an_identified_finance_person_on_a_finance_login_releases(warehouse, people_api, hold, monkeypatch):
    monkeypatch.setenv("CLOSEOUT_FINANCE_APPROVERS", ",".join(FINANCE))
    base = {**os.environ, "CLOSEOUT_AIRFLOW_URL": people_api.url}
    with login_in("closeout_pipeline") as pipeline, login_in("closeout_finance") as finance:
        as_finance = {**base, "AIRFLOW_CONN_CLOSEOUT_WAREHOUSE": conn_json_as(finance)}
        as_pipeline = {**base, "AIRFLOW_CONN_CLOSEOUT_WAREHOUSE": conn_json_as(pipeline)}

        no_token = _release(as_finance, hold)
        assert no_token.returncode == 2 and "no Airflow token" in no_token.stderr
        forged = _release({**as_finance, "CLOSEOUT_AIRFLOW_TOKEN": "not-a-token"}, hold)
        assert forged.returncode == 2 and "does not accept this token" in forged.stderr
        typed = _release({**as_finance, "CLOSEOUT_AIRFLOW_TOKEN": people_api.token(FINANCE[0])}, hold, "--by", "ana")
        assert typed.returncode == 2 and "--by is not accepted" in typed.stderr
        outsider = _release({**as_finance, "CLOSEOUT_AIRFLOW_TOKEN": people_api.token(OUTSIDER)}, hold)
        assert outsider.returncode == 2 and f"{OUTSIDER} is not in the finance group" in outsider.stderr
        requester = _release({**as_finance, "CLOSEOUT_AIRFLOW_TOKEN": people_api.token(REQUESTER)}, hold)
        assert requester.returncode == 2 and "not in the finance group" in requester.stderr
        # the person who caused the hold (the triggering user of the breaching reconcile): refused, recorded
        causer = _release({**as_finance, "CLOSEOUT_AIRFLOW_TOKEN": people_api.token(FINANCE[1])}, hold)
        assert causer.returncode == 2 and f"caused by {FINANCE[1]}, who cannot release it" in causer.stderr
        # the right person on the pipeline's database login: the database refuses
        on_pipeline = _release({**as_pipeline, "CLOSEOUT_AIRFLOW_TOKEN": people_api.token(FINANCE[0])}, hold)
        assert on_pipeline.returncode == 2 and "may not release holds" in on_pipeline.stderr
        assert warehouse.scalar("SELECT released_at FROM closeout.payout_holds") is None

        done = _release({**as_finance, "CLOSEOUT_AIRFLOW_TOKEN": people_api.token(FINANCE[0])}, hold)
        assert done.returncode == 0, done.stderr
        assert f"released payout hold {hold}" in done.stdout and f"by {FINANCE[0]}" in done.stdout
    assert warehouse.rows("SELECT released_by, release_reason FROM closeout.payout_holds") == [
        (FINANCE[0], "AR explained")]  # fmt: skip
    rows = warehouse.rows("SELECT kind, subject, requested_by, decided_by, outcome, airflow_ref->>'identified_by' "
                          "FROM closeout.decisions ORDER BY decision_id")  # fmt: skip
    assert [r[:5] for r in rows] == [
        ("hold_release", str(hold), FINANCE[1], FINANCE[1], "refused"),
        ("hold_release", str(hold), FINANCE[1], FINANCE[0], "released"),
    ]
    assert rows[1][5] == f"{people_api.url}/ui/auth/me"
