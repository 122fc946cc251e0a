"""Pilot and shadow mode at the money stages, in real closeout_stripe_publish and closeout_payouts runs against the
Stripe sandbox: only the cohort's drafts reach Stripe, the rest stay visibly in shadow and the reconciliation stays
green about them; growing the cohort publishes from the configured period on; turning the pilot off never
publishes a draft once held in shadow; payouts skip (and report) work outside the cohort; no cohort is today's
behaviour."""

from __future__ import annotations

import sys
from datetime import timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest
from closeout.payments import tasks as payment_tasks
from closeout.payments.cash import tasks as cash_tasks
from payments_support import check_invariant_3, last_month, published, seed_drafts
from pilot_support import recon_statuses, write_pilot

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "payouts"))
from payouts_support import exceptions_by_work, green_recon, items, pay, payees_file, seed_invoices, user_key

pytestmark = pytest.mark.integration

THREE = {"a": [D("1.5"), D("2")], "b": [D("3")], "c": [D("0.25"), D("4")]}


def _shadow(warehouse) -> dict[str, tuple[str, str, str]]:
    return {r[0]: r[1:] for r in warehouse.rows(
        "SELECT invoice_id, client_key, pilot_state, reason FROM closeout.pilot_shadow_drafts")}  # fmt: skip


def _publish(run_dag) -> None:
    result = run_dag("closeout_stripe_publish")
    assert result.state == "success", result


def test_only_the_cohort_is_published_and_the_rest_stays_in_shadow_with_recon_green(
    warehouse, stripe_sandbox, run_dag, tmp_path, monkeypatch
) -> None:
    inv_a, inv_b, inv_c = seed_drafts(THREE)
    month = last_month()
    next_month = (month + timedelta(days=32)).replace(day=1)
    pilot = write_pilot(tmp_path / "pilot.json", {"harvest:a": month, "harvest:b": next_month}, monkeypatch)

    _publish(run_dag)
    assert set(published(warehouse)) == {inv_a}
    assert stripe_sandbox.count("invoice") == 1 and stripe_sandbox.count("customer") == 1
    assert _shadow(warehouse) == {inv_b: ("harvest:b", "shadow", "before_cohort_period"),
                                  inv_c: ("harvest:c", "shadow", "not_in_cohort")}  # fmt: skip
    assert warehouse.rows("SELECT status FROM closeout.invoices WHERE invoice_id IN (%s, %s)", (inv_b, inv_c)) == [
        ("draft",), ("draft",)]  # fmt: skip
    assert warehouse.rows("SELECT client_key, from_period FROM closeout.pilot_cohort ORDER BY 1") == [
        ("harvest:a", month), ("harvest:b", next_month)]  # fmt: skip
    check_invariant_3(warehouse, stripe_sandbox)
    cash_tasks.sync_cash("pilot-cash")  # Stripe's own lists, so stripe_objects judges what Stripe holds
    assert recon_statuses(tmp_path) == {"entries_to_invoice_lines": "passed", "invoices_to_stripe": "passed",
                                        "stripe_objects": "passed"}  # fmt: skip

    _publish(run_dag)  # a rerun publishes nothing more
    assert set(published(warehouse)) == {inv_a} and stripe_sandbox.count("invoice") == 1

    # the cohort grows: c from last month on is published; b still only from next month
    write_pilot(pilot, {"harvest:a": month, "harvest:b": next_month, "harvest:c": month}, monkeypatch)
    _publish(run_dag)
    assert set(published(warehouse)) == {inv_a, inv_c} and stripe_sandbox.count("invoice") == 2
    assert _shadow(warehouse)[inv_c][1] == "released" and _shadow(warehouse)[inv_b][1] == "shadow"

    # the pilot is switched off: a draft once held in shadow is still never published by that alone
    monkeypatch.delenv("CLOSEOUT_PILOT_CONFIG")
    _publish(run_dag)
    assert set(published(warehouse)) == {inv_a, inv_c} and stripe_sandbox.count("invoice") == 2
    assert warehouse.scalar("SELECT count(*) FROM closeout.pilot_cohort") == 0
    assert _shadow(warehouse)[inv_b][1] == "shadow"
    check_invariant_3(warehouse, stripe_sandbox)


def test_without_a_cohort_every_draft_is_published_as_before(warehouse, stripe_sandbox, run_dag) -> None:
    ids = seed_drafts(THREE)
    _publish(run_dag)
    assert set(published(warehouse)) == set(ids) and stripe_sandbox.count("invoice") == 3
    assert warehouse.scalar("SELECT count(*) FROM closeout.pilot_shadow_drafts") == 0
    assert warehouse.scalar("SELECT count(*) FROM closeout_data.pilot_config_loads") == 0
    check_invariant_3(warehouse, stripe_sandbox)


def test_a_misconfigured_pilot_publishes_nothing(warehouse, stripe_sandbox, run_dag, tmp_path, monkeypatch) -> None:
    seed_drafts(THREE)
    bad = tmp_path / "pilot.yaml"
    bad.write_text("cohort:\n  - harvest:a\n", encoding="utf-8")  # no from_period: refused, not guessed
    monkeypatch.setenv("CLOSEOUT_PILOT_CONFIG", str(bad))
    monkeypatch.setenv("CLOSEOUT_TASK_RETRIES", "0")
    result = run_dag("closeout_stripe_publish")
    assert result.state == "failed" and result.task_states["publish_drafts"] == "failed", result
    assert published(warehouse) == {} and stripe_sandbox.count("invoice") == 0


def test_payouts_pay_only_the_cohort_and_report_the_rest(
    warehouse, stripe_sandbox, run_dag, tmp_path, monkeypatch
) -> None:
    work = {"a": [("u1", D("2.00"))], "b": [("u2", D("1.00"))]}
    month = last_month()
    pilot = write_pilot(tmp_path / "pilot.json", {"harvest:a": month, "harvest:b": month}, monkeypatch)
    invoices = seed_invoices(warehouse, work)
    assert set(invoices) == {"a", "b"}
    pay(stripe_sandbox, invoices, ["a", "b"])
    green_recon()
    monkeypatch.setenv("CLOSEOUT_PAYEES_CONFIG", str(payees_file(tmp_path, {
        "u1": ("60.00", "USD", "acct_1PilotU1"), "u2": ("40.00", "USD", "acct_1PilotU2")})))  # fmt: skip
    monkeypatch.setenv("CLOSEOUT_PAYOUTS_APPROVAL", "off")

    # b is rolled back out of the cohort after it was published and paid: its work is not paid out, and says why
    write_pilot(pilot, {"harvest:a": month}, monkeypatch)
    result = run_dag("closeout_payouts")
    assert result.state == "success", result
    planned = items(warehouse)
    assert set(planned) == {(user_key("u1"), invoices["a"][0])}
    assert planned[(user_key("u1"), invoices["a"][0])][:3] == (12000, "USD", "transferred")
    assert {k: v[0] for k, v in exceptions_by_work(warehouse).items()} == {
        (user_key("u2"), invoices["b"][0]): "pilot_shadow"}  # fmt: skip
    transfers = stripe_sandbox.objects("transfer")
    assert [t["metadata"]["closeout_invoice_id"] for t in transfers] == [invoices["a"][0]]

    # back in the cohort: the work is planned and the exception goes away
    write_pilot(pilot, {"harvest:a": month, "harvest:b": month}, monkeypatch)
    assert run_dag("closeout_payouts").state == "success"
    assert set(items(warehouse)) == {(user_key("u1"), invoices["a"][0]), (user_key("u2"), invoices["b"][0])}
    assert exceptions_by_work(warehouse) == {}


def test_publish_selection_ignores_a_pilot_with_no_candidates(warehouse, stripe_sandbox, tmp_path, monkeypatch) -> None:
    """No draft due: the cohort is still mirrored (the payout plan and the comparison read it)."""
    write_pilot(tmp_path / "pilot.json", {"harvest:z": last_month()}, monkeypatch)
    assert payment_tasks.publish_drafts("pilot-empty")["frozen"] == 0
    assert warehouse.rows("SELECT client_key FROM closeout.pilot_cohort") == [("harvest:z",)]


def test_the_close_dry_run_preview_leaves_shadow_drafts_out(warehouse, tmp_path, monkeypatch) -> None:
    """The month-end close's dry run lists what publish would send: the cohort's drafts, not the shadow ones."""
    from closeout.payments.preview import preview_publish
    from closeout.pilot import config
    from closeout.warehouse.db import connect

    inv_a, inv_b, inv_c = seed_drafts(THREE)
    today = last_month() + timedelta(days=40)
    with connect() as conn:
        assert {i["invoice_id"] for i in preview_publish(conn, today)["invoices"]} == {inv_a, inv_b, inv_c}
        write_pilot(tmp_path / "pilot.json", {"harvest:a": last_month()}, monkeypatch)
        config.load_and_apply(conn)
        assert [i["invoice_id"] for i in preview_publish(conn, today)["invoices"]] == [inv_a]
