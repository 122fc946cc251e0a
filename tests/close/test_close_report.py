"""The close report over a period made by closeout's own flow: entries captured and drafted, published to the
Stripe sandbox, paid (in full, in part, not at all, written off) through Stripe's events, journals posted, a real
GX reconciliation, payouts planned and released. The figures are checked against the public views and against
what the scenario makes by hand; then the files: CSV (formula-neutralised), JSON, HTML (escaped, charts inline),
deterministic bytes, the dry-run folder, a local path and an object-storage URL (fsspec ``memory://``)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import sys
from datetime import timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest
from billing_support import Books, Entry
from closeout.billing.periods import lock_period
from closeout.close import report
from closeout.payments import tasks as payment_tasks
from closeout.payouts import tasks as payout_tasks
from closeout.payouts.release import TransfersRefused
from closeout.recon import run_reconciliation
from closeout.warehouse.db import connect
from payments_support import last_month, seed_drafts

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ledger"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "payouts"))
from ledger_support import follow, sdk
from payouts_support import payees_file

pytestmark = pytest.mark.integration

HOSTILE = '=HYPERLINK("http://evil.example")<script>alert(1)</script>'
PERIOD_START = last_month()
PERIOD = PERIOD_START.strftime("%Y-%m")
EARLIER_START = (PERIOD_START - timedelta(days=1)).replace(day=1)
EARLIER = EARLIER_START.strftime("%Y-%m")


def _client_config(hostile: bool) -> dict:
    return {
        "defaults": {"require_approval": False},
        "clients": [{"client_key": f"harvest:{c}", "currency": "USD", "grouping": "entry",
                     "name": HOSTILE if (hostile and c == "c") else f"Client {c.upper()}"} for c in "abcd"],
    }  # fmt: skip


def _sql(query: str, *params):
    with connect() as conn:
        return conn.execute(query, params).fetchall()


@pytest.fixture
def closed_period(warehouse, stripe_sandbox, tmp_path, monkeypatch):
    """Last month, closed the way the chain closes it.

    - The month before: a (2 h) and b (1 h) invoiced and published; then a's entry is edited to 2.5 h and b's
      deleted, so last month's drafts carry an adjustment (+0.5 h) for a and a credit (-1 h) for b.
    - Last month: a 2 h + 3 h (u1), 1 h (u2), 0.5 h (u3), b 1.5 h, c 4 h (named with a formula and a script),
      d 1 h; c also has an entry without a rate (a billing exception). Published; a paid in full, b paid 20.00
      of 50.00, c unpaid, d written off; then the month is locked.
    - Journals posted, reconciled (real GX) for both months, payouts planned and released for a: u1's transfer goes
      out, Stripe refuses u2's (stopped), u3 has no payee configuration.
    """
    seed_drafts({c: [D("2"), D("1")][i : i + 1] for i, c in enumerate("ab")}, period=EARLIER_START, first_id=100)
    payment_tasks.publish_drafts("earlier")
    seed_drafts({"a": [D("2"), D("3")], "b": [D("1.5")], "c": [D("4")], "d": [D("1")]}, first_id=1)
    with connect() as conn:
        books = Books(conn)
        books.configure(_client_config(hostile=True))
        books.put(Entry("100", client="a", hours=D("2.5"), spent_date=EARLIER_START),
                  Entry("900", client="c", hours=D("1"), rate=None, spent_date=PERIOD_START),
                  Entry("901", client="a", user="u2", hours=D("1"), spent_date=PERIOD_START),
                  Entry("902", client="a", user="u3", hours=D("0.5"), spent_date=PERIOD_START))  # fmt: skip
        books.delete("101")
        books.draft()
        conn.commit()
    payment_tasks.publish_drafts("close")
    invoices = {c.removeprefix("harvest:"): (iid, sid) for c, iid, sid in _sql(
        "SELECT client_key, invoice_id, stripe_invoice_id FROM closeout.invoices WHERE period_start = %s",
        PERIOD_START)}  # fmt: skip
    assert sorted(invoices) == ["a", "b", "c", "d"], invoices
    follow("close")
    stripe_sandbox.pay_invoice(invoices["a"][1])
    stripe_sandbox.pay_invoice(invoices["b"][1], 2000)
    sdk(stripe_sandbox).invoices.mark_uncollectible(invoices["d"][1])
    follow("close")
    with connect() as conn:
        earlier = run_reconciliation(conn, period=EARLIER, data_docs_dir=tmp_path / "docs")
        recon = run_reconciliation(conn, period=PERIOD, data_docs_dir=tmp_path / "docs")
    payees = {"u1": ("50.00", "USD", "acct_1U1"), "u2": ("40.00", "USD", "acct_1U2")}
    monkeypatch.setenv("CLOSEOUT_PAYEES_CONFIG", str(payees_file(tmp_path, payees)))
    stripe_sandbox.refuse_transfers("account_closed", destination="acct_1U2")
    monkeypatch.setenv("CLOSEOUT_PAYOUTS_APPROVAL", "off")
    gate = payout_tasks.check_gate("close")
    planned = payout_tasks.plan_payouts("close")
    with pytest.raises(TransfersRefused, match="account_closed"):
        payout_tasks.release_batches("close", planned["awaiting_approval"], "auto: approval switched off")
    with connect() as conn:
        lock_period(conn, PERIOD, locked_by="ops@example.com", close_run_id="manual__close-1")
        conn.commit()
    return {"invoices": invoices, "recon": recon, "earlier": earlier, "gate": gate, "planned": planned}


STEPS = [
    {"step": "sync", "status": "success", "counts": {"entries": 9}},
    {"step": "publish", "status": "success", "counts": {"published": 4}, "message": "4 invoices finalized"},
]


def test_a_closed_period_shows_figures_that_tie_out_with_the_views(warehouse, closed_period, tmp_path):
    with connect() as conn:
        rep = report.build_report(conn, PERIOD, steps=STEPS, close_run_id="manual__close-1")
    clients = {c.client_key.removeprefix("harvest:"): c for c in rep.clients}
    assert sorted(clients) == ["a", "b", "c", "d"]
    a, b, c, d = (clients[k] for k in "abcd")
    # by hand: 100.00/h; a's +0.5 h adjustment and b's -1 h credit are billed in this period
    assert (a.hours, a.billed_minor, a.adjustments_minor, a.time_billed_minor) == (D("6.5"), 70000, 5000, 65000)
    assert (a.paid_minor, a.outstanding_minor, a.adjustment_lines) == (70000, 0, 1)
    assert (b.billed_minor, b.adjustments_minor, b.paid_minor, b.outstanding_minor) == (5000, -10000, 2000, 3000)
    assert (c.billed_minor, c.paid_minor, c.outstanding_minor, c.billing_exceptions) == (40000, 0, 40000, 1)
    assert c.client_name == HOSTILE and c.hours == D("5")  # the rate-less hour is tracked, not billed
    assert (d.billed_minor, d.paid_minor, d.outstanding_minor, d.written_off_minor) == (10000, 0, 0, 10000)
    # against the public views, queried independently
    for key, figures in clients.items():
        billed, paid = _sql(
            """SELECT coalesce(sum(total_minor), 0), coalesce(sum(amount_paid_minor), 0) FROM closeout.invoices
               WHERE client_key = %s AND period_start BETWEEN %s AND %s
                 AND status IN ('open', 'paid', 'uncollectible')""",
            f"harvest:{key}", rep.period_start, rep.period_end)[0]  # fmt: skip
        hours = _sql(
            """SELECT sum(hours) FROM closeout.time_entries WHERE client_key = %s AND deleted_at IS NULL
               AND spent_date BETWEEN %s AND %s""",
            f"harvest:{key}", rep.period_start, rep.period_end)[0][0]  # fmt: skip
        assert (figures.billed_minor, figures.paid_minor, figures.hours) == (billed, paid, hours), key
    (usd,) = rep.totals
    assert (usd.billed_minor, usd.paid_minor, usd.outstanding_minor, usd.written_off_minor) == (
        125000, 72000, 43000, 10000)  # fmt: skip
    assert usd.ties_out and rep.ties_out and [t.difference_minor for t in usd.tie_outs] == [0, 0, 0]
    # the books: receivable in the ledger = what open invoices of every period still owe (b 30.00, c 400.00, and
    # the month before's two unpaid invoices, 300.00)
    books = usd.tie_outs[2]
    assert (books.left_minor, books.right_minor) == (73000, 73000)
    assert books.left_minor == sum(r[0] for r in _sql(
        "SELECT ledger_receivable_minor FROM closeout.receivable_by_client WHERE currency = 'USD'"))  # fmt: skip
    # reconciliation: the period's own run, with a Data Docs link per check; history has both months
    assert rep.recon["run_id"] == closed_period["recon"].run_id
    checks = {ch["check_name"]: ch for ch in rep.recon["checks"]}
    assert set(checks) == {r.check_name for r in closed_period["recon"].checks}
    ran = [ch for ch in checks.values() if ch["status"] in ("passed", "failed")]
    assert ran and all(ch["evidence_link"].startswith("file://") for ch in ran)
    history = {h["period"]: h for h in rep.recon_history}
    assert list(history)[-2:] == [EARLIER, PERIOD] and len(history) == 6
    assert history[EARLIER]["run_id"] == closed_period["earlier"].run_id and history[PERIOD]["checks"]
    # payouts: what the payouts tables hold for this period's invoices
    expected = _sql(
        """SELECT p.currency, p.status, count(*), sum(p.amount_minor) FROM closeout.payout_items p
           JOIN closeout.invoices i USING (invoice_id) WHERE i.period_start = %s GROUP BY 1, 2 ORDER BY 1, 2""",
        PERIOD_START)  # fmt: skip
    got = [(p["currency"], p["status"], p["items"], p["amount_minor"]) for p in rep.payouts["by_status"]]
    assert got == [(cur, st, n, int(amount)) for cur, st, n, amount in expected]
    # u2: 1 h x 40.00; u1: 5 h plus the 0.5 h adjustment on this invoice, x 50.00
    assert got == [("USD", "stopped", 1, 4000), ("USD", "transferred", 1, 27500)]
    ((batch_status, stopped),) = [(b["status"], b["stopped"]) for b in rep.payouts["batches"]]
    assert (batch_status, stopped) == ("released_with_exceptions", 1)
    not_paid_out = {x["reason"]: x for x in rep.payouts["exceptions"]}
    assert sorted(not_paid_out) == ["no_payee_config", "transfer_refused"]
    assert not_paid_out["no_payee_config"]["payees"] == ["harvest:u3"]
    assert "account_closed" in not_paid_out["transfer_refused"]["details"][0]
    open_holds = _sql("SELECT count(*) FROM closeout.payout_holds WHERE released_at IS NULL")[0][0]
    assert rep.payouts["open_holds"] == open_holds
    # the month before still owes: a's 2 h and b's 1 h invoices were never paid
    assert [(e["currency"], e["invoices"], e["outstanding_minor"]) for e in rep.earlier_open] == [("USD", 2, 30000)]
    (lock,) = rep.period_state["period_locks"]
    assert (lock["locked_by"], lock["close_run_id"], lock["period"]) == ("ops@example.com", "manual__close-1", PERIOD)
    exceptions = [(x["source"], x["client_key"], x["record"]) for x in rep.exceptions]
    assert ("billing", "harvest:c", "harvest:900") in exceptions

    # -- the files, to a local folder --------------------------------------------------------------------------
    location = tmp_path / "reports"
    urls = report.write_report(rep, str(location))
    assert urls == {
        "html": str(location / PERIOD / "index.html"),
        "csv": str(location / PERIOD / f"close-report-{PERIOD}.csv"),
        "json": str(location / PERIOD / f"close-report-{PERIOD}.json"),
    }
    assert urls["html"] == report.report_url(PERIOD, location=str(location))
    raw_csv = Path(urls["csv"]).read_bytes()
    rows = list(csv.DictReader(io.StringIO(raw_csv.decode("utf-8"))))
    by_client = {r["client_key"]: r for r in rows if r["row"] == "client"}
    assert by_client["harvest:c"]["client_name"] == "'" + HOSTILE  # neutralised: no formula in a spreadsheet
    assert (by_client["harvest:a"]["billed_minor"], by_client["harvest:a"]["billed"]) == ("70000", "700.00")
    assert (by_client["harvest:b"]["adjustments_minor"], by_client["harvest:b"]["adjustments"]) == ("-10000", "-100.00")
    (total,) = [r for r in rows if r["row"] == "total"]
    assert (total["billed_minor"], total["outstanding"], total["ties_out"]) == ("125000", "430.00", "yes")
    doc = json.loads(Path(urls["json"]).read_text(encoding="utf-8"))
    assert doc["period"] == PERIOD and doc["ties_out"] is True and doc["close_run_id"] == "manual__close-1"
    assert doc["totals"][0]["outstanding_minor"] == 43000 and doc["totals"][0]["outstanding"] == "430.00"
    assert [t["ties_out"] for t in doc["totals"][0]["tie_outs"]] == [True, True, True]
    assert doc["reconciliation"]["run_id"] == closed_period["recon"].run_id
    assert doc["steps"][1] == {**STEPS[1]}
    html = Path(urls["html"]).read_text(encoding="utf-8")
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html.lower() and 'href="http://evil' not in html
    assert html.count("<svg") == 2 and "DRY RUN" not in html and "manual__close-1" in html
    assert "ties out" in html and "DOES NOT TIE OUT" not in html and "1,250.00" in html
    assert "stopped: refused by Stripe" in html and "released_with_exceptions" in html
    assert "Still owed from earlier billing periods" in html and f"the oldest from {EARLIER_START}" in html
    assert f'href="close-report-{PERIOD}.csv"' in html
    for ch in ran:
        assert f'href="{ch["evidence_link"]}"' in html

    # -- deterministic: the same data gives the same bytes, again and from a second read ---------------------
    before = {k: Path(v).read_bytes() for k, v in urls.items()}
    assert report.write_report(rep, str(location)) == urls
    assert {k: Path(v).read_bytes() for k, v in urls.items()} == before
    with connect() as conn:
        again = report.build_report(conn, PERIOD, steps=STEPS, close_run_id="manual__close-1")
    again = dataclasses.replace(again, generated_at=rep.generated_at)
    assert report.report_json(again) == before["json"] and report.report_csv(again) == before["csv"]
    other = tmp_path / "again"
    report.write_report(again, str(other))
    assert (other / PERIOD / "index.html").read_bytes() == before["html"]


# -- lighter: drafts only (no Stripe), for the locations, the dry run and a figure that does not tie out ------------
@pytest.fixture
def drafted(warehouse):
    """Last month drafted, nothing published: a and c in USD (c named with a formula and a script), k in KWD (three
    decimals); one bad version of c's entry quarantined by the capture, and one record never seen valid."""
    from closeout.trackers.records import Problem
    from closeout.trackers.store import quarantine

    seed_drafts({"a": [D("2"), D("1.25")], "c": [D("3")]})
    with connect() as conn:
        books = Books(conn)
        config = _client_config(hostile=True)
        config["clients"].append({"client_key": "harvest:k", "currency": "KWD", "grouping": "entry", "name": "Kuwait"})
        books.configure(config)
        books.put(Entry("50", client="k", currency="KWD", rate=D("12.345"), hours=D("1.5"), spent_date=PERIOD_START))
        books.draft()
        problems = [Problem("time_entry", "3", "hours", "negative hours: -2", {"id": 3, "hours": -2}),
                    Problem("time_entry", "zz", "spent_date", "no date", {"id": "zz"})]  # fmt: skip
        quarantine(conn, source="harvest", sync_run_id=books.sync_run_id, url=None, problems=problems)
        conn.commit()


def test_report_url_is_known_before_the_report_and_a_dry_run_has_its_own_folder(monkeypatch, tmp_path):
    monkeypatch.setenv(report.LOCATION_ENV, "s3://finance-bucket/close")
    assert report.reports_location() == "s3://finance-bucket/close"
    assert report.report_url("2026-10") == "s3://finance-bucket/close/2026-10/index.html"
    assert report.report_url("2026-10", dry_run=True) == "s3://finance-bucket/close/2026-10/dry-run/index.html"
    assert report.report_url("2026-10", location=str(tmp_path)) == str(tmp_path / "2026-10" / "index.html")
    assert report.report_url("2026-10", location="file:///srv/reports/") == "file:///srv/reports/2026-10/index.html"
    monkeypatch.delenv(report.LOCATION_ENV)
    # the artifacts location (docs/artifacts.md)
    assert report.reports_location().endswith("/.closeout/artifacts/reports")
    for bad in ("2026-13", "2026-1", "26-10", "2026-10/../x", ""):
        with pytest.raises(report.ReportError, match="expected YYYY-MM"):
            report.report_url(bad)



def test_only_safe_links_reach_the_page():
    """Evidence and hosted-invoice links come from data: a script URL never becomes a link; GX's local Data Docs
    paths become file URLs a browser opens."""
    from closeout.close.report_html import safe_link

    assert safe_link("javascript:alert(1)") is None and safe_link("JaVaScRiPt:x") is None
    assert safe_link("data:text/html,<b>x</b>") is None and safe_link("") is None and safe_link(None) is None
    assert safe_link("/srv/data docs/index.html") == "file:///srv/data%20docs/index.html"
    assert safe_link("https://invoice.stripe.com/i/x?y=1") == "https://invoice.stripe.com/i/x?y=1"
    assert safe_link("file:///srv/docs/v.html") == "file:///srv/docs/v.html"


def test_a_dry_run_to_object_storage_leaves_the_real_report_alone(warehouse, drafted, monkeypatch):
    import fsspec

    monkeypatch.setenv(report.LOCATION_ENV, "memory://closeout-reports/finance")
    memory = fsspec.filesystem("memory")
    with connect() as conn:
        real = report.build_report(conn, PERIOD, close_run_id="manual__real")
        steps = [{"step": "publish", "status": "skipped", "message": "would publish 2"}]
        dry = report.build_report(conn, PERIOD, dry_run=True, close_run_id="manual__dry", steps=steps)
    real_urls = report.write_report(real)
    dry_urls = report.write_report(dry)
    assert real_urls["html"] == report.report_url(PERIOD) == f"memory://closeout-reports/finance/{PERIOD}/index.html"
    assert dry_urls["html"] == report.report_url(PERIOD, dry_run=True)
    assert dry_urls["json"] == f"memory://closeout-reports/finance/{PERIOD}/dry-run/close-report-{PERIOD}.json"
    real_html = memory.cat(real_urls["html"]).decode()
    dry_html = memory.cat(dry_urls["html"]).decode()
    assert "DRY RUN" not in real_html and "manual__real" in real_html
    assert "DRY RUN" in dry_html and "would do" in dry_html and "would publish 2" in dry_html
    assert json.loads(memory.cat(dry_urls["json"]))["dry_run"] is True
    assert json.loads(memory.cat(real_urls["json"]))["close_run_id"] == "manual__real"
    # nothing issued yet: the drafts show as not issued, and zero billed still ties out
    figures = {c.client_key: c for c in dry.clients}
    assert (figures["harvest:a"].drafted_minor, figures["harvest:a"].billed_minor) == (32500, 0)
    assert dry.ties_out and "&lt;script&gt;" in dry_html and "<script" not in dry_html.lower()
    # KWD has three decimals: 1.5 h x 12.345 = 18.5175, billed as 18518 fils, shown 18.518
    kwd = figures["harvest:k"]
    assert (kwd.currency, kwd.exponent, kwd.drafted_minor) == ("KWD", 3, 18518) and "18.518" in dry_html
    assert [t.currency for t in dry.totals] == ["KWD", "USD"] and dry_html.count("<svg") == 3
    # the quarantined bad version of c's entry is c's; the record never seen valid is listed, unmapped
    assert (figures["harvest:c"].quarantined, figures["harvest:c"].exceptions) == (1, 1)
    quarantined = sorted((x["client_key"], x["record"]) for x in dry.exceptions if x["source"] == "quarantine")
    assert quarantined == [("", "harvest:zz"), ("harvest:c", "harvest:3")]
    assert "unmapped" in dry_html and "no date" in dry_html
    rows = list(csv.DictReader(io.StringIO(memory.cat(dry_urls["csv"]).decode())))
    assert [r["client_name"] for r in rows if r["client_key"] == "harvest:c"] == ["'" + HOSTILE]
    kwd_total = next(r for r in rows if r["row"] == "total" and r["currency"] == "KWD")
    assert (kwd_total["drafted_minor"], kwd_total["drafted"], kwd_total["quarantined"]) == ("18518", "18.518", "0")


def test_a_figure_that_does_not_tie_out_is_shown_as_such(warehouse, drafted, tmp_path):
    """Paid recorded for less than the invoice, as a broken link would record it: billed - paid no longer equals
    what is outstanding, and the report says so with the difference instead of asserting a balance."""
    with connect() as conn:
        (invoice_id,) = conn.execute("SELECT invoice_id FROM closeout.invoices WHERE client_key = 'harvest:a'"
                                     ).fetchone()  # fmt: skip
        Books(conn).freeze(invoice_id)  # the billing lifecycle's own freeze: the invoice is issued (publishing)
        conn.execute("UPDATE closeout_data.invoices SET status = 'paid', amount_paid_minor = 30000 "
                     "WHERE invoice_id = %s", (invoice_id,))  # fmt: skip
        conn.commit()
        rep = report.build_report(conn, PERIOD)
    kwd, usd = rep.totals
    assert kwd.ties_out and kwd.currency == "KWD"
    first, second, books = usd.tie_outs
    assert (first.left_minor, first.right_minor, first.difference_minor) == (2500, 0, 2500)
    assert not first.ties_out and second.ties_out and books.ties_out and not rep.ties_out
    urls = report.write_report(rep, str(tmp_path))
    html = Path(urls["html"]).read_text(encoding="utf-8")
    assert "DOES NOT TIE OUT" in html and "Does not tie out" in html
    totals = {r["currency"]: r for r in csv.DictReader(io.StringIO(Path(urls["csv"]).read_text(encoding="utf-8")))
              if r["row"] == "total"}  # fmt: skip
    assert (totals["USD"]["ties_out"], totals["KWD"]["ties_out"]) == ("no", "yes")
    assert json.loads(Path(urls["json"]).read_text())["totals"][1]["tie_outs"][0]["difference_minor"] == 2500


def test_the_figures_chart_draws_the_largest_clients_and_escapes_names():
    """Pure drawing: bars scale to the largest value, at most MAX_CLIENTS rows with a note for the rest, names escaped
    (also when cut short), drafts get their own bar only when there are any."""
    from closeout.close import charts

    zero = {f.name: 0 for f in dataclasses.fields(report.ClientFigures) if f.type == "int"}

    def figures(i: int, billed: int, drafted: int = 0) -> report.ClientFigures:
        return report.ClientFigures(**{**zero, "client_key": f"harvest:{i}", "client_name": f"<b>&{i}</b>",
                                       "currency": "EUR", "exponent": 2, "hours": D(i), "billable_hours": D(i),
                                       "billed_minor": billed, "paid_minor": billed // 2, "drafted_minor": drafted})

    many = [figures(i, 1000 * i) for i in range(1, charts.MAX_CLIENTS + 6)]
    svg = charts.client_figures_chart(many, "EUR")
    assert svg.count("<g><title>") == charts.MAX_CLIENTS and "5 more are in the table" in svg
    assert "<b>" not in svg and "&lt;b&gt;&amp;35&lt;/b&gt;" in svg and "&lt;b&gt;&amp;1&lt;/b&gt;" not in svg
    assert f'width="300.0" height="11" fill="{charts.BILLED_COLOUR}"' in svg  # the largest bill spans the panel
    assert f'width="150.0" height="11" fill="{charts.PAID_COLOUR}"' in svg and "350.00" in svg
    assert "drafts not issued" not in svg and charts.client_figures_chart(many, "USD") == ""
    drafted = charts.client_figures_chart([figures(1, 0, drafted=5000)], "EUR")
    assert "drafts not issued" in drafted and f'width="300.0" height="11" fill="{charts.DRAFT_COLOUR}"' in drafted
