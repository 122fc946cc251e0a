"""Issue 15 item 3: every date, cut-off and period param of a manual run is checked with a message naming it, and a
bad one fails the task without retries (``closeout.params``)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from airflow.sdk.exceptions import AirflowFailException
from closeout.params import ParamError, cutoff_param, date_param, period_param, timestamp_param


@pytest.mark.parametrize(
    ("check", "name", "value", "problem"),
    [
        (date_param, "as_of", "2026-02-30", "not a calendar day"),
        (date_param, "as_of", "31/10/2026", "expected a date YYYY-MM-DD"),
        (date_param, "as_of", "2026-10-31T00:00:00", "expected a date YYYY-MM-DD"),
        (date_param, "as_of", "２０２６-１０-３１", "expected a date YYYY-MM-DD"),  # full-width digits
        (date_param, "as_of", "9999-12-31", "outside 2000-01-01 .. 2099-12-31"),
        (date_param, "as_of", "0024-10-31", "outside 2000-01-01 .. 2099-12-31"),
        (date_param, "as_of", 20261031, "expected a date YYYY-MM-DD"),
        (timestamp_param, "ledger_cutoff", "yesterday", "expected an ISO timestamp"),
        (timestamp_param, "external_cutoff", "2026-10-31T25:00:00Z", "not a real time"),
        (timestamp_param, "external_cutoff", "2026-10-31T23:61:00Z", "not a real time"),
        (timestamp_param, "ledger_cutoff", "1970-01-01T00:00:00Z", "outside 2000-01-01"),
        (period_param, "period", "2026-13", "month must be 01-12"),
        (period_param, "period", "26-10", "expected 'YYYY-MM'"),
        (cutoff_param, "cutoff", "last month", "expected a date YYYY-MM-DD"),
        (cutoff_param, "cutoff", "2024-02-30", "not a calendar day"),
    ],
)
def test_a_bad_value_is_refused_naming_the_param(check, name: str, value: object, problem: str) -> None:
    with pytest.raises(ParamError) as refused:
        check(name, value)
    assert str(refused.value).startswith(f"parameter {name!r} = {value!r}: ") and problem in str(refused.value)
    assert isinstance(refused.value, AirflowFailException)  # the task fails at once: a retry fails the same way


def test_good_values_are_read() -> None:
    assert date_param("as_of", "2026-10-31") == date(2026, 10, 31)
    assert date_param("as_of", None) is None and date_param("as_of", "") is None
    assert timestamp_param("ledger_cutoff", "2026-10-31T23:59:59Z") == datetime(2026, 10, 31, 23, 59, 59, tzinfo=UTC)
    assert timestamp_param("ledger_cutoff", "2026-10-31") == datetime(2026, 10, 31, tzinfo=UTC)  # naive = UTC
    assert timestamp_param("ledger_cutoff", "2026-10-31T12:00:00+02:00").utcoffset().total_seconds() == 7200
    assert period_param("period", "2026-10") == "2026-10" and period_param("period", None) is None
    assert [cutoff_param("cutoff", v) for v in ("auto", "AUTO", "none", None, "2024-06-01")] == [
        "auto", "auto", "none", "none", "2024-06-01"]  # fmt: skip
    with pytest.raises(ParamError, match="parameter 'as_of' = None: required"):
        date_param("as_of", None, required=True)


@pytest.mark.integration
def test_manual_runs_with_a_bad_date_fail_at_once_naming_it(warehouse, run_dag, monkeypatch) -> None:
    monkeypatch.setenv("CLOSEOUT_TASK_RETRIES", "2")  # a bad param must not use them
    recon = run_dag("closeout_reconcile", {"ledger_cutoff": "yesterday"})
    assert recon.state == "failed" and recon.tries["reconcile"] == 1, recon
    publish = run_dag("closeout_stripe_publish", {"as_of": "9999-12-31"})  # a real date: the form's schema passes it
    assert publish.state == "failed" and publish.tries["take_corrections_off_drafts"] == 1, publish
    messages = dict(warehouse.rows("SELECT dag_id, message FROM closeout_data.alert_causes"))
    assert messages["closeout_reconcile"].startswith(
        "parameter 'ledger_cutoff' = 'yesterday': expected an ISO timestamp"), messages
    assert messages["closeout_stripe_publish"].startswith("parameter 'as_of' = '9999-12-31': 9999-12-31 is outside")
    assert warehouse.scalar("SELECT count(*) FROM closeout_data.recon_runs") == 0  # nothing ran with it
