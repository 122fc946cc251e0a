"""Unit tests of what makes a cause (the fingerprint), who hears of it (routing), and how amounts read."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from closeout.alerts.compose import major_units
from closeout.alerts.failure import mask_shapes
from closeout.alerts.fingerprint import exception_type, fingerprint, normalise
from closeout.alerts.markers import facts_of, finance_alerted, with_facts
from closeout.alerts.routing import FINANCE_CHANNELS, MONEY_DAG_IDS, PLATFORM_CHANNELS, channels_for
from closeout.dag_defaults import MONEY_DAG_IDS as EXPORTED

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gate"))


def test_run_specific_parts_are_normalised_and_periods_kept() -> None:
    one = ("closeout_payouts refused at gate: payout hold 7 is open since 2026-11-21 20:31Z (journals, period "
           "2026-10): reconciliation check journals out of tolerance for 2026-10 (run recon_20261121T203100_9f8e7d6c) "
           "in manual__2026-11-21T20:30:00+00:00, worker 0x7f3a2b")  # fmt: skip
    two = one.replace("hold 7", "hold 12").replace("20:31Z", "23:59Z").replace("9f8e7d6c", "00aa11bb") \
        .replace("manual__2026-11-21T20:30:00+00:00", "scheduled__2026-11-22T00:00:00+00:00").replace("0x7f3a2b", "0x1")
    assert normalise(one) == normalise(two)
    assert "2026-10" in normalise(one) and "hold #" in normalise(one)
    other_period = one.replace("2026-10", "2026-09")
    assert normalise(other_period) != normalise(one), "another period is another cause"
    assert normalise("Stripe total differs for inv_24b5f8e3ae115b8ffaa2") != normalise(
        "Stripe total differs for inv_272120157f365b5da493"
    ), "another object is another cause"
    assert normalise("run 3de9c9f0-1b4e-4a8e-9a57-2f0d1c2b3a4d: 1,250 rows") == "run <uuid>: # rows"


def test_fingerprint_separates_dag_task_and_exception_type() -> None:
    base = fingerprint("closeout_payouts", "gate", "AirflowFailException", "x")
    assert base == fingerprint("closeout_payouts", "gate", "AirflowFailException", "x")
    assert len({base, fingerprint("closeout_payouts", "release", "AirflowFailException", "x"),
                fingerprint("closeout_reconcile", "gate", "AirflowFailException", "x"),
                fingerprint("closeout_payouts", "gate", "ValueError", "x")}) == 4  # fmt: skip
    try:
        try:
            raise KeyError("k")
        except KeyError as inner:
            raise RuntimeError("outer") from inner
    except RuntimeError as exc:
        assert exception_type(exc) == "RuntimeError <- KeyError"


def test_money_dags_reach_finance_unless_the_gate_already_told_it() -> None:
    from closeout.gate.held import PayoutsHeld

    assert EXPORTED is MONEY_DAG_IDS and "closeout_month_end_close" in MONEY_DAG_IDS
    assert channels_for("closeout_sync_harvest") == PLATFORM_CHANNELS
    assert channels_for("closeout_stripe_publish") == PLATFORM_CHANNELS + FINANCE_CHANNELS
    held = PayoutsHeld("reconciliation breached; payouts are held")
    assert finance_alerted(held) and not finance_alerted(RuntimeError("x"))
    try:
        raise RuntimeError("close step reconcile failed") from held
    except RuntimeError as wrapped:
        assert finance_alerted(wrapped), "a step wrapping the breach still marks finance as told"
    assert channels_for("closeout_reconcile", finance_already_alerted=finance_alerted(held)) == PLATFORM_CHANNELS


def test_facts_travel_on_the_exception_and_its_cause() -> None:
    inner = with_facts(ValueError("bad"), period="2026-10", counts={"invoices": 3})
    try:
        raise RuntimeError("wrapped") from inner
    except RuntimeError as exc:
        assert facts_of(exc) == {"period": "2026-10", "counts": {"invoices": 3}}


@pytest.mark.parametrize(("minor", "currency", "shown"), [
    (-5000, "USD", "-50.00 USD"), (-5000, "KWD", "-5.000 KWD"), (-500, "JPY", "-500 JPY"),
    (123456789, "EUR", "1,234,567.89 EUR"), (7, "BHD", "0.007 BHD"),
])  # fmt: skip
def test_major_units_per_currency_exponent(minor: int, currency: str, shown: str) -> None:
    assert major_units(minor, currency) == shown
    assert major_units(minor, currency, {"USD": 2, "KWD": 3, "JPY": 0, "EUR": 2, "BHD": 3}) == shown


def test_secret_shapes_are_masked() -> None:
    text = ("auth failed for postgresql://closeout:hunter2pw@db:5432/x with sk_live_abc123XYZ, "
            "whsec_0123abcd and Authorization: Bearer eyJ.abc.def; password=s3cr3t token: t0k3n")  # fmt: skip
    masked = mask_shapes(text)
    for secret in ("hunter2pw", "sk_live_abc123XYZ", "whsec_0123abcd", "eyJ.abc.def", "s3cr3t", "t0k3n"):
        assert secret not in masked, secret
    assert "postgresql://***@db:5432/x" in masked and "password=***" in masked
