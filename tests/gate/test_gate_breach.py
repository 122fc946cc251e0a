"""``gate.breach`` end to end with real parts: the Airflow API server pauses the DAG, Postgres holds the
hold, the local SMTP and HTTP receivers get the alerts; repeats and retries repeat nothing."""

from __future__ import annotations

import gate_support
import pytest
from closeout.gate import GateError, breach, green, payouts_blocked, release_hold
from closeout.warehouse.db import connect
from gate_support import API_PASSWORD, SMTP_LOGIN, TEST_DAG, WEBHOOK_TOKEN

# fixtures (defined in gate_support so that other test folders can reuse them)
api_server, airflow_api, smtp, hook_receiver, finance_conns = (
    gate_support.api_server,
    gate_support.airflow_api,
    gate_support.smtp,
    gate_support.hook_receiver,
    gate_support.finance_conns,
)

EVIDENCE = "/data/closeout/recon/2026-10/ar_vs_open_invoices.json"


def _breach(conn, *, check: str = "ar_vs_open_invoices", period: str = "2026-10", run: str = "recon__1"):
    return breach(
        conn,
        recon_run_id=run,
        period=period,
        check_name=check,
        observed={"currency": "EUR", "ledger_ar_minor": 1250000, "open_invoices_minor": 1248766,
                  "difference_minor": 1234},
        tolerance={"currency": "EUR", "max_difference_minor": 0},
        counts={"invoices": 42, "journals": 118},
        evidence=EVIDENCE,
        dag_id=TEST_DAG,
    )  # fmt: skip


def test_breach_pauses_holds_and_alerts_once(warehouse, airflow_api, smtp, hook_receiver, finance_conns) -> None:
    with connect() as conn:
        outcome = _breach(conn)
        assert outcome.hold_created and outcome.paused is True and outcome.alerts_sent == ["email", "webhook"]
        assert airflow_api.is_paused(TEST_DAG) is True
        assert [h.hold_id for h in payouts_blocked(conn)] == [outcome.hold.hold_id]

        [mail] = smtp.messages
        body = mail.body
        for expected in ("ar_vs_open_invoices", "2026-10", "12.34 EUR", "invoices: 42", EVIDENCE,
                         f"--hold-id {outcome.hold.hold_id}"):  # fmt: skip
            assert expected in body, expected
        for secret in (API_PASSWORD, SMTP_LOGIN[1], WEBHOOK_TOKEN):
            assert secret not in mail.raw.decode() and secret not in str(hook_receiver.requests[0]["json"])
        [hook] = hook_receiver.requests
        assert hook["json"]["hold_id"] == outcome.hold.hold_id and hook["json"]["evidence"] == EVIDENCE

        # The same breach again (a retry, or tomorrow's run): re-pauses, opens nothing, sends nothing.
        airflow_api.set_paused(TEST_DAG, False)
        repeat = _breach(conn, run="recon__2")
        assert not repeat.hold_created and repeat.hold.hold_id == outcome.hold.hold_id and repeat.alerts_sent == []
        assert airflow_api.is_paused(TEST_DAG) is True
        assert len(smtp.messages) == 1 and len(hook_receiver.requests) == 1

        # A different cause alerts again, with its own hold.
        other = _breach(conn, check="stripe_vs_invoices")
        assert other.hold_created and other.hold.hold_id != outcome.hold.hold_id
        assert len(smtp.messages) == 2 and len(hook_receiver.requests) == 2
        assert "stripe_vs_invoices" in smtp.messages[1].message["Subject"]

        # Green does not release; only a recorded release does, and the cause can then alert anew.
        assert [h.hold_id for h in green(conn, check_name="ar_vs_open_invoices", period="2026-10")] == [
            outcome.hold.hold_id
        ]
        assert len(payouts_blocked(conn)) == 2
        release_hold(conn, outcome.hold.hold_id, by="ana@finance", why="late Xero import, now matching")
        assert [h.hold_id for h in payouts_blocked(conn)] == [other.hold.hold_id]
        anew = _breach(conn, run="recon__3")
        assert anew.hold_created and len(smtp.messages) == 3
    assert warehouse.scalar("SELECT count(*) FROM closeout.payout_holds") == 3
    assert warehouse.scalar("SELECT count(*) FROM closeout.finance_alerts") == 6


def test_failed_channel_is_retried_alone(warehouse, airflow_api, smtp, hook_receiver, finance_conns) -> None:
    hook_receiver.status = 503
    with connect() as conn:
        with pytest.raises(GateError, match="is recorded, but: webhook alert"):
            _breach(conn)
        assert len(payouts_blocked(conn)) == 1 and len(smtp.messages) == 1
        hook_receiver.status = 200
        retry = _breach(conn)
        assert retry.alerts_sent == ["webhook"] and not retry.hold_created
    assert len(smtp.messages) == 1 and len(hook_receiver.requests) == 2  # the 503 attempt and the retry


def test_pause_failure_still_holds_and_alerts(warehouse, airflow_api, smtp, hook_receiver, finance_conns, monkeypatch):
    import json

    monkeypatch.setenv("AIRFLOW_CONN_AIRFLOW_API", json.dumps(
        {"conn_type": "http", "host": airflow_api.url, "login": "pauser", "password": "wrong-pass-81x"}))  # fmt: skip
    with connect() as conn, pytest.raises(GateError, match="pause closeout_invoice_drafts"):
        _breach(conn)
    assert warehouse.scalar("SELECT count(*) FROM closeout.payout_holds WHERE released_at IS NULL") == 1
    body = smtp.messages[0].body
    assert "could NOT be paused" in body and "refused the login 'pauser'" in body
    assert "wrong-pass-81x" not in smtp.messages[0].raw.decode()
