"""Issue 16's "Done when", end to end: a month of time and expenses in Harvest and Clockify (billable with a markup,
non-billable, reimbursable by a contractor with payout setup, one in EUR; see ``expense_month_support``) through
closeout's real DAG runs (``dag.test``) on the real warehouse against the Harvest, Clockify and Stripe sandboxes.

closeout_sync_harvest and closeout_sync_clockify capture it; closeout_month_end_close closes the month (final sync,
lock, drafts, publish, events, journals, export, reconcile: every check green, expenses_to_invoice_lines
included); each billable expense is billed exactly once (closeout.invoice_line_expenses against closeout.expenses),
the markup on its line; the journals book pass-through, markup, project cost and the reimbursable payable. The
customers pay in the Stripe sandbox and closeout_stripe_events confirms it; closeout_payouts, approved by
finance through the real Airflow API server (answered as tests/payouts/test_payout_approval.py answers it), pays
the contractor their work plus the reimbursement in one Stripe transfer; closeout_tracker_writeback mirrors both
Harvest invoices with their payments (both by import, so Harvest shows their time and expenses billed; Pied
Piper's marked-up one gets its markup as one added line, see also the test at the end) and marks exactly the
billed Clockify entry invoiced, tracker_billed_state green. closeout_weekly_summary for the month's week sends one
e-mail whose figures equal sums taken straight from closeout.time_entries and closeout.expenses, and a second run
sends nothing. Then the breaks: the billable Harvest expense edited after issue becomes a linked adjustment and
the expense check stays green; a forged second billing row for the Clockify expense fails exactly
expenses_to_invoice_lines, naming it."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest
from closeout.recon.runner import run_reconciliation
from closeout.warehouse.db import connect
from conftest import set_conn_extra

HERE = Path(__file__).resolve().parent
for _folder in ("writeback", "payouts", "weekly_summary", "expense_billing", "ledger", "gate"):
    sys.path.insert(0, str(HERE.parent / _folder))
import expense_month_support as em  # noqa: E402
import gate_support  # noqa: E402
import summary_support  # noqa: E402
from expense_billing_support import check_expense_invariants, expense_rows  # noqa: E402
from ledger_support import check_invariants  # noqa: E402
from payouts_support import check_invariant_6, transfers  # noqa: E402
from test_payout_approval import _looker, _run_answered  # noqa: E402
from writeback_support import pay_all, writebacks  # noqa: E402

pytestmark = pytest.mark.integration

finance_mail = summary_support.finance_mail  # the weekly summary tests' local SMTP receiver, as a fixture
api_server = gate_support.api_server  # the real Airflow API server finance answers the payouts approval through

CLOSE, RECONCILE = "closeout_month_end_close", "closeout_reconcile"


def _ok(run_dag, dag_id: str, conf: dict | None = None):
    result = run_dag(dag_id, conf)
    assert result.state == "success", (dag_id, result)
    return result


def _green(warehouse, run, *, must_pass: tuple[str, ...]) -> dict[str, str]:
    """Every check of that run passed (or does not apply to this deployment), and ``must_pass`` passed."""
    statuses = em.check_statuses(warehouse, run.run_id)
    assert statuses, f"no reconciliation recorded by {run.run_id}"
    assert {n: s for n, s in statuses.items() if s not in ("passed", "not_applicable")} == {}, statuses
    assert {n: statuses.get(n) for n in must_pass} == dict.fromkeys(must_pass, "passed"), statuses
    return statuses


def test_an_expense_month_closes_billed_once_booked_reimbursed_written_back_and_summarised(
    warehouse, harvest, clockify, stripe_sandbox, run_dag, finance_mail, api_server, monkeypatch, tmp_path
) -> None:
    month = em.fill_trackers(harvest, clockify)
    em.configure(tmp_path, month, monkeypatch)
    set_conn_extra(monkeypatch, "clockify_default", workspace_id=clockify.workspace_id)  # the loaded workspace
    monkeypatch.delenv("CLOSEOUT_PAYOUTS_APPROVAL", raising=False)  # approval on, as deployed
    monkeypatch.setenv("CLOSEOUT_FINANCE_APPROVERS", gate_support.API_USER)
    x = {k: str(v) for k, v in month.expenses.items()}

    # -- capture: the sync DAGs bring every expense in, approved -----------------------------------------------
    _ok(run_dag, "closeout_sync_harvest")
    _ok(run_dag, "closeout_sync_clockify")
    captured = {r[0]: r[1:] for r in warehouse.rows(
        "SELECT source_id, source, currency, amount_minor, billable, approved FROM closeout.expenses")}  # fmt: skip
    assert captured == {
        x["h_billable"]: ("harvest", "USD", 12000, True, True),
        x["h_nonbillable"]: ("harvest", "USD", 3000, False, True),
        x["h_reimbursable"]: ("harvest", "USD", 4500, False, True),
        x["h_eur"]: ("harvest", "EUR", 8000, True, True),
        x["c_billable"]: ("clockify", "USD", 4500, True, True),
    }

    # -- the close: every check green, the expense check included ------------------------------------------------
    close = _ok(run_dag, CLOSE, {"period": month.period, "trackers": ["harvest", "clockify"]})
    _green(warehouse, close, must_pass=("expenses_to_invoice_lines", "entries_to_invoice_lines"))
    invoices = {(c, cur): (iid, total, status) for iid, c, cur, total, status in warehouse.rows(
        "SELECT invoice_id, client_key, currency, total_minor, status FROM closeout.invoices")}  # fmt: skip
    usd = invoices[(f"harvest:{em.USD_CLIENT}", "USD")]
    eur = invoices[(f"harvest:{em.EUR_CLIENT}", "EUR")]
    cfy = invoices[(month.clockify_client, "USD")]
    assert {v[2] for v in invoices.values()} == {"open"} and len(invoices) == 3, invoices

    # each billable expense billed exactly once, in its own currency; the markup on the Harvest USD client's line
    assert em.expense_billing(warehouse) == {
        x["h_billable"]: ("USD", 13200, 1), x["h_eur"]: ("EUR", 8000, 1), x["c_billable"]: ("USD", 4500, 1)}
    with connect() as conn:
        check_expense_invariants(conn, {x["h_billable"]: 13200, x["h_eur"]: 8000, x["c_billable"]: 4500})
    [(desc, qty, unit, amount)] = warehouse.rows(
        "SELECT description, quantity, unit_rate, amount_minor FROM closeout.invoice_lines "
        "WHERE invoice_id = %s AND kind = 'expense'", (usd[0],))  # fmt: skip
    assert (qty, unit, amount) == (D("120"), D("1.1"), 13200) and "incl. 10% markup" in desc, desc
    rate = D(str(next(e["billable_rate"] for e in harvest.entries_snapshot() if e["id"] == month.entries["h_work_1"])))
    assert usd[1] == int(D("3.5") * rate * 100) + 13200, "time at Harvest's rate plus the marked-up expense"
    assert (eur[1], cfy[1]) == (8000, 36000 + 4500)

    # the books: pass-through cost and markup on the invoice, project cost, the contractor's payable
    assert em.role_lines(warehouse, x["h_nonbillable"]) == {"project_costs": 3000, "expense_clearing": -3000}
    assert em.role_lines(warehouse, x["h_reimbursable"]) == {"project_costs": 4500,
                                                             "reimbursements_payable": -4500}  # fmt: skip
    assert em.role_lines(warehouse, x["h_billable"]) == {"reimbursable_expenses": 12000,
                                                         "expense_clearing": -12000}  # fmt: skip
    [(cost_credit, markup_credit)] = warehouse.rows(
        """SELECT sum(credit_minor) FILTER (WHERE role = 'reimbursable_expenses'),
                  sum(credit_minor) FILTER (WHERE role = 'expense_markup_revenue')
           FROM closeout.ledger_lines l JOIN closeout.ledger_journals j USING (journal_id)
           WHERE j.kind = 'invoice' AND l.currency = 'USD'""")  # fmt: skip
    assert (cost_credit, markup_credit) == (12000 + 4500, 1200), "USD invoices credit cost and markup apart"
    check_invariants(warehouse)

    # -- customers pay in Stripe; the events confirm it; the month reconciles green -----------------------------
    assert sorted(pay_all(stripe_sandbox, warehouse, run_dag)) == sorted([usd[0], eur[0], cfy[0]])
    assert {s for (s,) in warehouse.rows("SELECT status FROM closeout.invoices")} == {"paid"}
    _green(warehouse, _ok(run_dag, RECONCILE, {"period": month.period}), must_pass=("expenses_to_invoice_lines",))

    # -- closeout_payouts: the contractor's work (3.5 h x 60.00) plus the reimbursement (45.00), one transfer ------
    # finance approves the batch through Airflow's Required Actions API while the run waits at 'approve'
    payouts, person = _run_answered(run_dag, api_server, "Approve", _looker(warehouse, stripe_sandbox))
    assert payouts.state == "success" and person.seen["transfers"] == 0, (payouts, person.seen)
    assert warehouse.rows("SELECT status, approved_by FROM closeout.payout_batches") == [
        ("released", f"approval: {gate_support.API_USER}")]  # fmt: skip
    contractor = f"harvest:{em.CONTRACTOR}"
    assert transfers(stripe_sandbox) == [(contractor, usd[0], 21000 + 4500)]
    [transfer] = stripe_sandbox.objects("transfer")
    assert (transfer["destination"], transfer["currency"]) == (em.CONTRACTOR_ACCOUNT, "usd")
    assert warehouse.rows(
        "SELECT payee_key, amount_minor, source_ref, status FROM closeout.payout_adjustments "
        "WHERE reason = 'reimbursement'") == [(contractor, 4500, f"expense:harvest:{x['h_reimbursable']}:v1",
                                               "settled")]  # fmt: skip
    assert warehouse.rows("SELECT * FROM closeout.unpaid_reimbursements") == []
    check_invariant_6(warehouse, stripe_sandbox)

    # -- write-back: the trackers show exactly what closeout billed, Harvest the payments -----------------------
    _ok(run_dag, "closeout_tracker_writeback")
    _ok(run_dag, "closeout_tracker_writeback")  # payments recorded on the mirrors made by the first run
    # Both invoices are imported: Harvest bills exactly their time and expenses. Pied Piper's carries a 10 %
    # markup, which Harvest's import bills at cost, so closeout adds it as one "Expense markup" line (the markup
    # closeout billed, 12.00) and Harvest's total is closeout's (docs/tracker-writeback.md); no gaps.
    billed_expenses = {str(e["id"]): e["invoice"]["id"] for e in harvest.expenses.snapshot() if e["is_billed"]}
    mirrored = writebacks(warehouse, "invoice")
    assert {r[2]: (r[4], r[5]) for r in mirrored} == {usd[0]: ("done", "import"), eur[0]: ("done", "import")}
    harvest_id = {r[2]: int(r[3]) for r in mirrored}
    assert billed_expenses == {x["h_eur"]: harvest_id[eur[0]], x["h_billable"]: harvest_id[usd[0]]}
    assert {e["id"]: e["invoice"]["id"] for e in harvest.entries_snapshot() if e["is_billed"]} == {
        month.entries["h_work_1"]: harvest_id[usd[0]], month.entries["h_work_2"]: harvest_id[usd[0]]}
    assert writebacks(warehouse, "gap") == []
    assert [(r[2], r[4], r[5]) for r in writebacks(warehouse, "credit_note")] == [
        (f"{usd[0]}/markup", "done", "markup_line_item")]  # fmt: skip
    mirrors = {str(m["client"]["id"]): m for m in harvest.invoices.snapshot()}
    assert set(mirrors) == {str(em.USD_CLIENT), str(em.EUR_CLIENT)}
    for client, (_iid, total, _s) in ((em.USD_CLIENT, usd), (em.EUR_CLIENT, eur)):
        mirror = harvest.invoices.get(mirrors[str(client)]["id"])
        assert D(str(mirror["amount"])) * 100 == total and mirror["state"] == "paid", mirror
        [payment] = harvest.invoices.payments(mirror["id"])
        assert D(str(payment["amount"])) * 100 == total
    invoiced = {e["id"] for e in clockify.entries_snapshot() if e.get("invoicingState") == "INVOICED"}
    assert invoiced == {month.entries["c_work"]}
    assert {r[4] for r in writebacks(warehouse) if r[1] != "gap"} == {"done"}
    _green(warehouse, _ok(run_dag, RECONCILE, {"period": month.period}),
           must_pass=("expenses_to_invoice_lines", "tracker_billed_state"))  # fmt: skip

    # -- the weekly summary of the month's week: one e-mail, figures tied to the warehouse ------------------------
    _ok(run_dag, "closeout_weekly_summary", {"week": month.week})
    assert len(finance_mail.messages) == 1
    doc = json.loads((tmp_path / "artifacts" / "summaries" / month.week / "summary.json").read_text())
    got: dict[str, dict[str, D]] = defaultdict(lambda: defaultdict(D))
    for c in doc["clients"]:
        for k in ("approved_hours", "billable_value_minor", "billable_expenses_minor", "nonbillable_expenses_minor"):
            got[c["currency"]][k] += D(str(c[k]))
    week = (month.monday, month.monday + timedelta(days=6))
    want: dict[str, dict[str, D]] = defaultdict(lambda: defaultdict(D))
    for cur, hours, value in warehouse.rows(
        """SELECT currency, sum(hours), sum(amount_minor) FILTER (WHERE billable) FROM closeout.time_entries
           WHERE approved AND deleted_at IS NULL AND spent_date BETWEEN %s AND %s GROUP BY currency""", week):
        want[cur]["approved_hours"], want[cur]["billable_value_minor"] = D(hours), D(value or 0)
    for cur, billable, nonbillable in warehouse.rows(
        """SELECT currency, sum(amount_minor) FILTER (WHERE billable), sum(amount_minor) FILTER (WHERE NOT billable)
           FROM closeout.expenses WHERE approved AND deleted_at IS NULL AND spent_date BETWEEN %s AND %s
           GROUP BY currency""", week):  # fmt: skip
        want[cur]["billable_expenses_minor"] = D(billable or 0)
        want[cur]["nonbillable_expenses_minor"] = D(nonbillable or 0)
    assert want["USD"]["approved_hours"] == D("6.5") and want["USD"]["billable_expenses_minor"] == 16500
    assert {c: {k: v for k, v in f.items() if v} for c, f in got.items()} == {
        c: {k: v for k, v in f.items() if v} for c, f in want.items()}  # fmt: skip
    (figures,) = warehouse.rows("SELECT figures FROM closeout.weekly_summaries WHERE week = %s", (month.week,))[0]
    assert figures["totals"] == doc["totals"], "the record finance's mail was built from is the file's"
    assert month.week in finance_mail.messages[0].message["Subject"]
    _ok(run_dag, "closeout_weekly_summary", {"week": month.week})
    assert len(finance_mail.messages) == 1, "a second run for the same week sends nothing"

    # -- the break: the billable Harvest expense edited after issue becomes a linked correction --------------------
    harvest.expenses.update_expense(int(x["h_billable"]), total_cost=150.00)
    _ok(run_dag, "closeout_sync_harvest", {"sweep": "always"})
    _ok(run_dag, "closeout_invoice_drafts")
    with connect() as conn:
        rows = expense_rows(conn, x["h_billable"])
        check_expense_invariants(conn, {x["h_billable"]: 16500, x["h_eur"]: 8000, x["c_billable"]: 4500})
    assert [(r["kind"], r["amount_minor"]) for r in rows] == [("expense", 13200), ("adjustment", 3300)], rows
    assert rows[-1]["adjusts_invoice_id"] == usd[0] and rows[-1]["invoice_id"] != usd[0]
    _green(warehouse, _ok(run_dag, RECONCILE, {"period": month.period}), must_pass=("expenses_to_invoice_lines",))

    # -- the tamper: a second billing row for the Clockify expense fails exactly the expense check ---------------
    with connect() as conn:
        forged = conn.execute(
            """INSERT INTO closeout_data.invoice_line_expenses (invoice_id, line_key, source, source_id,
                   expense_version, cost_minor, markup_percent, amount_minor, valid_from)
               SELECT invoice_id, line_key, source, source_id, expense_version, cost_minor, markup_percent,
                      amount_minor, valid_from + 1
               FROM closeout_data.invoice_line_expenses WHERE invoice_id = %s AND source_id = %s""",
            (cfy[0], x["c_billable"]),
        ).rowcount
        conn.commit()
        assert forged == 1
        result = run_reconciliation(conn, period=month.period, data_docs_dir=tmp_path / "docs_tampered")
    failed = {c.check_name: c for c in result.checks if c.status not in ("passed", "not_applicable")}
    assert set(failed) == {"expenses_to_invoice_lines"}, {n: c.status for n, c in failed.items()}
    rows = {(r["kind"], r["item"], r["difference_minor"]) for r in failed["expenses_to_invoice_lines"].evidence["rows"]}
    assert ("expense_billed", f"clockify:{x['c_billable']}", 4500) in rows, rows


def test_a_marked_up_invoice_leaves_its_time_and_expenses_billed_in_harvest(
    warehouse, harvest, clockify, stripe_sandbox, run_dag, finance_mail, monkeypatch, tmp_path
) -> None:
    month = em.fill_trackers(harvest, clockify)
    em.configure(tmp_path, month, monkeypatch)
    for dag_id in ("closeout_sync_harvest", "closeout_invoice_drafts", "closeout_stripe_publish",
                   "closeout_tracker_writeback"):  # fmt: skip
        result = run_dag(dag_id)
        if result.state != "success":  # pytest.fail is not an AssertionError: a broken chain fails, not xfails
            pytest.fail(f"{dag_id}: {result}")
    assert {e["id"] for e in harvest.entries_snapshot() if e["is_billed"]} == {
        month.entries["h_work_1"], month.entries["h_work_2"]}, "exactly closeout's entries billed in Harvest"
    assert {str(e["id"]) for e in harvest.expenses.snapshot() if e["is_billed"]} == {
        str(month.expenses["h_billable"]), str(month.expenses["h_eur"])}
