"""Finance alerts over real sockets: plain-text e-mail through a local SMTP server (with AUTH), JSON to a
local HTTP receiver; failures name the channel and never a credential."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import gate_support
import pytest
from closeout.alerts.compose import BreachFacts, compose_hold_alert, major_units, tolerance_summary
from closeout.alerts.mail import AlertDeliveryError, send_email
from closeout.alerts.webhook import post_webhook
from gate_support import SMTP_LOGIN, WEBHOOK_TOKEN

# fixtures (defined in gate_support so that other test folders can reuse them)
smtp, hook_receiver, finance_conns = (
    gate_support.smtp,
    gate_support.hook_receiver,
    gate_support.finance_conns,
)

FACTS = BreachFacts(
    recon_run_id="recon__2026-11-01",
    period="2026-10",
    check_name="ar_vs_open_invoices",
    observed={"currency": "EUR", "ledger_ar_minor": 1250000, "open_invoices_minor": 1248766, "difference_minor": 1234},
    tolerance={"currency": "EUR", "max_difference_minor": 0},
    counts={"invoices": 42, "journals": 118},
    evidence="/data/closeout/recon/2026-10/ar_vs_open_invoices.json",
)


def _alert(**kwargs):
    return compose_hold_alert(
        FACTS, hold_id=7, opened_at=datetime(2026, 11, 1, 6, 0, tzinfo=UTC), dag_id="closeout_payouts",
        paused=True, **kwargs,
    )  # fmt: skip


def test_major_units() -> None:
    assert major_units(1234, "EUR") == "12.34 EUR"
    assert major_units(-150000, "usd") == "-1,500.00 USD"
    assert major_units(1500, "JPY") == "1,500 JPY"
    assert major_units(1234, "KWD") == "1.234 KWD"


def test_tolerance_is_stated_per_reported_currency_in_words() -> None:
    observed = {"USD": {"difference_minor": -5000}, "KWD": {"difference_minor": 7}, "failing rows": {}}
    tolerance = {"default_minor": 0, "currencies": {"KWD": 5}}
    assert tolerance_summary(tolerance, observed, {"USD": 2, "KWD": 3}) == [
        "    USD: 0.00 USD per row (must match exactly)",
        "    KWD: 0.005 KWD per row (smaller differences pass)",
    ]
    assert tolerance_summary({"max_difference_minor": 0}, observed, {"USD": 2, "KWD": 3}) == []
    daily = compose_hold_alert(
        BreachFacts("recon_1", None, "journals", {"USD": {"difference_minor": 350}}, tolerance, {"rows": 1}, "docs"),
        hold_id=1, opened_at=datetime(2026, 11, 1, tzinfo=UTC), dag_id="closeout_payouts", paused=True,
    )  # fmt: skip
    assert "journals out of tolerance for all periods" in daily.subject
    assert "tolerance (the daily reconcile, all periods)." in daily.text
    assert "USD: 0.00 USD per row (must match exactly)" in daily.text


def test_email_is_plain_text_with_everything_finance_needs(smtp, finance_conns) -> None:
    accepted = send_email(_alert())
    assert accepted == ["ana@finance.test", "ben@finance.test"]
    [mail] = smtp.messages
    assert mail.auth == SMTP_LOGIN and mail.mail_from == "closeout@company.test"
    assert mail.rcpt_to == ["ana@finance.test", "ben@finance.test"]
    message = mail.message
    assert message.get_content_type() == "text/plain"
    assert message["Subject"] == (
        "[closeout] Payouts on hold: ar_vs_open_invoices out of tolerance for 2026-10 (hold #7)"
    )
    body = mail.body
    for expected in (
        "ar_vs_open_invoices", "2026-10", "recon__2026-11-01", "difference_minor: 12.34 EUR (1234 minor units)",
        "ledger_ar_minor: 12,500.00 EUR", "max_difference_minor: 0.00 EUR", "invoices: 42", "journals: 118",
        "Hold id:   7", "/data/closeout/recon/2026-10/ar_vs_open_invoices.json",
        "python -m closeout.gate release --hold-id 7", "has been paused",
    ):  # fmt: skip
        assert expected in body, expected
    for secret in (SMTP_LOGIN[1], WEBHOOK_TOKEN):
        assert secret not in mail.raw.decode()


def test_known_secrets_are_masked(smtp, finance_conns) -> None:
    leaky = BreachFacts(**{**FACTS.__dict__, "evidence": f"https://x.test/e?token={WEBHOOK_TOKEN}"})
    alert = compose_hold_alert(
        leaky, hold_id=1, opened_at=datetime.now(UTC), dag_id="closeout_payouts", paused=None,
        pause_problem="HTTP 401", secrets=[WEBHOOK_TOKEN],
    )  # fmt: skip
    assert WEBHOOK_TOKEN not in alert.text and WEBHOOK_TOKEN not in json.dumps(alert.payload)
    assert "could NOT be paused (HTTP 401)" in alert.text


def test_webhook_posts_json_with_bearer(hook_receiver, finance_conns) -> None:
    assert post_webhook(_alert()) == 200
    [request] = hook_receiver.requests
    assert request["path"] == "/hooks/finance"
    assert request["headers"]["Authorization"] == f"Bearer {WEBHOOK_TOKEN}"
    payload = request["json"]
    assert payload["event"] == "payout_hold_opened" and payload["hold_id"] == 7
    assert payload["check_name"] == "ar_vs_open_invoices" and payload["period"] == "2026-10"
    assert payload["observed"]["difference_minor"] == 1234 and payload["counts"] == {"invoices": 42, "journals": 118}
    assert payload["evidence"].endswith("ar_vs_open_invoices.json")
    assert "release --hold-id 7" in payload["text"]


def test_failures_name_the_channel_not_the_secret(smtp, hook_receiver, finance_conns, monkeypatch) -> None:
    hook_receiver.status = 500
    with pytest.raises(AlertDeliveryError) as webhook_error:
        post_webhook(_alert())
    assert "HTTP 500" in str(webhook_error.value) and WEBHOOK_TOKEN not in str(webhook_error.value)

    conn = json.loads(__import__("os").environ["AIRFLOW_CONN_FINANCE_SMTP"])
    monkeypatch.setenv("AIRFLOW_CONN_FINANCE_SMTP", json.dumps({**conn, "password": "wrong-password-123"}))
    with pytest.raises(AlertDeliveryError) as smtp_error:
        send_email(_alert())
    assert "refused the login" in str(smtp_error.value) and "wrong-password-123" not in str(smtp_error.value)
    assert smtp.messages == []


def test_amounts_per_currency_show_major_units_and_the_report_link(smtp, finance_conns) -> None:
    """The reconcile reports differences per currency code; each shows in major units by that currency's
    exponent (as closeout_data.currencies has it), and a close report link is carried when given."""
    facts = BreachFacts(**{**FACTS.__dict__, "observed": {
        "USD": {"rows": 1, "difference_minor": -5000}, "KWD": {"rows": 2, "difference_minor": -5000},
        "JPY": {"rows": 1, "max_abs_difference_minor": -500}}})  # fmt: skip
    alert = compose_hold_alert(
        facts, hold_id=9, opened_at=datetime(2026, 11, 1, tzinfo=UTC), dag_id="closeout_payouts", paused=True,
        exponents={"USD": 2, "KWD": 3, "JPY": 0}, report_url="https://reports.test/close/2026-10.html",
    )  # fmt: skip
    for expected in ("difference_minor: -50.00 USD (-5000 minor units)",
                     "difference_minor: -5.000 KWD (-5000 minor units)",
                     "max_abs_difference_minor: -500 JPY (-500 minor units)",
                     "Close report: https://reports.test/close/2026-10.html"):  # fmt: skip
        assert expected in alert.text, expected
    assert alert.payload["report_url"] == "https://reports.test/close/2026-10.html"
    assert "report_url" not in _alert().payload and "Close report" not in _alert().text
    send_email(alert)
    assert "-5.000 KWD" in smtp.messages[0].body
