"""Crash matrix, the payout hold's finance alert (``closeout.gate.breach``, what a reconciliation breach sends):
the worker is killed (SIGKILL) at each alert point, before the e-mail or webhook is handed over and after the
receiver accepted it and before it is recorded; the breach is then handled again, as the reconcile task's retry
does. One hold; the real Airflow API server paused the DAG; the SMTP and HTTP receivers get one distinct alert
each (a resend after the receiver accepted it keeps its Message-ID / Idempotency-Key); one record per channel."""

from __future__ import annotations

import pytest
from closeout.gate import breach
from closeout.warehouse.db import connect
from crash_support import die_at
from gate_support import TEST_DAG, airflow_api, api_server, finance_conns, hook_receiver, smtp  # noqa: F401
from test_crash_alerts import ALERT_POINTS

pytestmark = pytest.mark.integration

BREACH = {"recon_run_id": "recon__crash", "period": "2026-10", "check_name": "ar_vs_open_invoices",
          "observed": {"currency": "EUR", "difference_minor": 1234}, "tolerance": {"max_difference_minor": 0},
          "counts": {"invoices": 42}, "evidence": "exports/2026-10/evidence.json", "dag_id": TEST_DAG}  # fmt: skip
CODE = ("from closeout.gate import breach; from closeout.warehouse.db import connect\n"
        f"with connect() as conn:\n    breach(conn, **{BREACH!r})")  # fmt: skip


@pytest.mark.parametrize("point", ALERT_POINTS)
def test_a_breach_killed_around_its_alert_sends_finance_one_alert_per_channel(
    warehouse, airflow_api, smtp, hook_receiver, finance_conns, point: str  # noqa: F811
) -> None:
    die_at(point, CODE)
    assert warehouse.scalar("SELECT count(*) FROM closeout.payout_holds WHERE released_at IS NULL") == 1

    with connect() as conn:
        outcome = breach(conn, **BREACH)
    assert not outcome.hold_created and outcome.paused is True and outcome.problems == []
    assert airflow_api.is_paused(TEST_DAG) is True

    mail_ids = [m.message["Message-ID"] for m in smtp.messages]
    hook_keys = [r["headers"]["Idempotency-Key"] for r in hook_receiver.requests]
    died_on = "email" if point.startswith("alert.email") else "webhook"
    for channel, ids in (("email", mail_ids), ("webhook", hook_keys)):
        assert len(set(ids)) == 1, f"{channel}: one alert, whatever was resent: {ids}"
        resent = point.endswith("after_send") and channel == died_on
        assert len(ids) == (2 if resent else 1), f"{channel}: {ids}"
    hold_id = outcome.hold.hold_id
    assert mail_ids[0].startswith(f"<closeout-hold-{hold_id}-") and hook_keys[0].startswith(f"closeout-hold-{hold_id}-")
    assert warehouse.rows("SELECT hold_id, channel FROM closeout_data.finance_alerts ORDER BY channel") == [
        (hold_id, "email"), (hold_id, "webhook")]  # fmt: skip

    with connect() as conn:  # tomorrow's reconcile finds the same breach: nothing more is sent
        assert breach(conn, **{**BREACH, "recon_run_id": "recon__next"}).alerts_sent == []
    assert (len(smtp.messages), len(hook_receiver.requests)) == (len(mail_ids), len(hook_keys))
