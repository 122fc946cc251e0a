"""Benchmark: the Harvest write-back of a month of ``--invoices`` issued invoices, within Harvest's rate limit.

Issue 16 item 7: "write-back of a month of 10,000 invoices within Harvest's rate limit at no more than the
documented minimum number of requests per invoice".

Setup (not timed), through closeout's own code end to end, so every row the write-back reads was made the way
production makes it:

* the Harvest sandbox in its own process (``--serve``) generates one month (last month) of time for about
  ``--invoices`` clients with the sandbox's own generator, closes (approves) every entry and adds a closed expense
  to about one project in ten; its rate limit is off while closeout reads it;
* the real Harvest sync (``closeout.trackers.harvest.sync.run_all``) captures it into a fresh warehouse;
* the real drafting (``closeout.billing.drafting.refresh_drafts``) groups it into one draft per client;
* the real publish (``closeout.payments.publish``) issues them to a Stripe sandbox in its own process; the clients
  of about 60% pay in full there, a few get a credit note first, and closeout learns both from Stripe's events
  (``closeout.payments.events``), as ``closeout_stripe_events`` does.

So Harvest holds unbilled exactly the entries and expenses the warehouse billed (the write-back's import path), and
the warehouse's invoices, payments and credit notes are the ones the real chain records.

Timed: the Harvest sandbox's documented limit is switched on (100 requests per 15 s, the window shortened by
``--window-scale`` so the run takes minutes; the client's pacing, the connection extra ``max_requests`` /
``per_seconds``, gets the same window), then ``closeout.writeback.tasks.writeback_harvest`` (what the
``closeout_tracker_writeback`` DAG's task calls, with its default 1,000 invoices per run) runs until a run has
nothing left to do, as successive hourly runs would.

Reported: requests by kind from the sandbox's own request log, requests per invoice against the documented minimum
(derived from the warehouse: per invoice 1 create + 1 send + 1 per payment + 1 per credit note + the reads the
exactness check needs, one uninvoiced listing per billed project for time and one for expenses when it bills
expenses; per run, amortised, the pages of the invoice listing that notices hand deletions), 429s, and the elapsed
time against what the rate limit allows for the requests made.

Clockify (``--clockify-entries``, default 20,000; 0 skips it): a second fresh warehouse, a Clockify sandbox in its own
process with the paid plan's 50 requests/s, last month's entries (approved, one currency, no day above 20 h) synced,
drafted and published by closeout, then ``closeout.writeback.tasks.writeback_clockify`` (default batch 500 ids, env
``CLOSEOUT_CLOCKIFY_INVOICED_BATCH``): invoiced-flag requests per 1,000 billed ids, against one request per invoice
per 1,000 ids (the sandbox's cap per request; Clockify documents none), 429s and time against 50/s.

Writes ``benchmarks/results/writeback-<date>-<machine>.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import sys
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

from benchmarks.harvest_ingest import RESULTS, ROOT, control, fresh_database, machine, start_sandbox_process

RATE_REQUESTS = 100
RATE_SECONDS = 15.0
PAGE_SIZE = 2000
ENTRIES_PER_CLIENT = 4
CLIENTS_PER_INVOICE = 1.17  # about 1 client in 7 bills nothing that month (non-billable work, KWD amounts stopped)
PAID_SHARE = 0.6
CREDIT_NOTE_SHARE = 0.01
CLOCKIFY_PER_SECOND = 50  # the paid plan's documented limit


def last_month_bounds(today: date) -> tuple[date, date]:
    first_this = today.replace(day=1)
    last = first_this - timedelta(days=1)
    return last.replace(day=1), last


def serve(invoices: int, seed: int) -> int:
    """The sandbox process: last month of work for ``invoices`` clients, every entry approved, some expenses."""
    from sandbox.harvest.data import generate_dataset
    from sandbox.harvest.server import HarvestSandbox
    from sandbox.serving import serve_until, stop_on_signals

    stopping = stop_on_signals()
    first, last = last_month_bounds(date.today())
    sandbox = HarvestSandbox(token="sandbox-token", account_id="123456", rate_limit=None)  # noqa: S106 (the sandbox's)
    clients = round(invoices * CLIENTS_PER_INVOICE)
    sandbox.load(generate_dataset(clients * ENTRIES_PER_CLIENT, seed=seed, anchor=last, n_clients=clients,
                                  days=(last - first).days + 1))  # fmt: skip
    # the generator gives few users for few entries; a month of them piles more than 24 h on a person's day, which
    # closeout rightly refuses to bill (over_24h_day): such days get quarter hours, or less so the day stays under
    # 20 h. Every entry approved (closed) and stopped, as a month-end close has them.
    snapshot = sandbox.entries_snapshot()
    day_hours: dict[tuple[int, str], float] = {}
    day_count: Counter[tuple[int, str]] = Counter()
    for entry in snapshot:
        key = (entry["user"]["id"], entry["spent_date"])
        day_hours[key] = day_hours.get(key, 0.0) + float(entry["hours"] or 0)
        day_count[key] += 1
    for entry in snapshot:
        fields: dict[str, object] = {}
        key = (entry["user"]["id"], entry["spent_date"])
        if day_hours[key] > 20:
            crowded = day_count[key] * 0.25 > 20
            fields["hours"] = max(0.01, math.floor(2000 / day_count[key]) / 100) if crowded else 0.25
        if not entry["is_closed"] or entry.get("is_running"):
            fields.update(is_closed=True, is_running=False)
        if fields:
            sandbox.update_entry(entry["id"], **fields)
    rng = random.Random(seed)
    members: dict[int, list[int]] = {}
    for user_id, project_id in sandbox._user_assignments:
        members.setdefault(project_id, []).append(user_id)
    for project_id in sorted(sandbox._projects):
        if rng.random() < 0.1 and members.get(project_id):
            sandbox.expenses.create_expense(project_id=project_id, user_id=members[project_id][0],
                                            spent_date=first + timedelta(days=rng.randrange((last - first).days)),
                                            total_cost=rng.randrange(500, 50_000) / 100, billable=True,
                                            is_closed=True, notes="bench expense")  # fmt: skip
    url = sandbox.start("127.0.0.1", 0)
    print(f"HARVEST_SANDBOX_URL={url}", flush=True)
    return serve_until(stopping, sandbox.stop)


def serve_clockify(entries: int, seed: int) -> int:
    """The Clockify sandbox process: last month's ``entries`` entries, all approved, the paid plan's 50 requests/s."""
    from sandbox.clockify import ClockifySandbox
    from sandbox.clockify.data import generate_dataset
    from sandbox.serving import serve_until, stop_on_signals

    stopping = stop_on_signals()
    first, last = last_month_bounds(date.today())
    sandbox = ClockifySandbox(generate_dataset(entries, seed=seed, anchor=last, days=(last - first).days + 1),
                              limit="paid")  # fmt: skip
    # as for Harvest: no person's day above 20 h (closeout refuses over_24h_day), one currency (the clients'), every
    # entry approved and not yet invoiced: a month-end close's state
    snapshot = sandbox.entries_snapshot()
    per_day = Counter((e["userId"], e["timeInterval"]["start"][:10]) for e in snapshot)
    for entry in snapshot:
        start = datetime.fromisoformat(entry["timeInterval"]["start"].replace("Z", "+00:00"))
        minutes = max(1, min(60, 1200 // per_day[(entry["userId"], entry["timeInterval"]["start"][:10])]))
        rate = (entry.get("hourlyRate") or {}).get("amount") or 10_000
        sandbox.update_entry(entry["id"], end=start + timedelta(minutes=minutes),
                             hourlyRate={"amount": rate, "currency": "USD"})  # fmt: skip
    ids = [e["id"] for e in snapshot]
    sandbox.approve(ids)
    sandbox.mark_invoiced(ids, False)
    sandbox.start("127.0.0.1", 0)
    found = {"api_url": sandbox.api_url, "reports_url": sandbox.reports_url, "workspace_id": sandbox.workspace_id,
             "url": sandbox.url, "api_key": sandbox.api_key}  # fmt: skip
    print(f"CLOCKIFY_SANDBOX={json.dumps(found)}", flush=True)
    return serve_until(stopping, sandbox.stop)


def clockify_phase(entries: int, seed: int) -> dict[str, Any]:
    """Clockify's invoiced flags after a real chain (sync, drafts, publish to Stripe) in a second fresh warehouse:
    ``closeout.writeback.tasks.writeback_clockify`` at its default batch, under the paid plan's 50 requests/s."""
    import contextlib

    from closeout.billing import config as billing_config
    from closeout.billing import drafting
    from closeout.masking import forget_known_secrets
    from closeout.payments import publish
    from closeout.payments.hook import StripeHook
    from closeout.trackers.clockify import sync
    from closeout.warehouse.db import connect
    from closeout.warehouse.migrations import apply_migrations
    from closeout.writeback import tasks

    from benchmarks.stripe_payments import start_stripe_sandbox

    os.environ["AIRFLOW_CONN_CLOSEOUT_WAREHOUSE"] = fresh_database("closeout_bench_writeback_clockify")
    with connect(autocommit=True) as admin:
        apply_migrations(admin)
    proc, line = start_sandbox_process("benchmarks.writeback", ["--serve-clockify", "--clockify-entries", str(entries),
                                                                "--seed", str(seed)], "CLOCKIFY_SANDBOX")  # fmt: skip
    box = json.loads(line)
    stripe_proc, stripe_url = start_stripe_sandbox()
    os.environ["AIRFLOW_CONN_CLOCKIFY_DEFAULT"] = json.dumps(
        {"conn_type": "http", "host": box["api_url"], "password": box["api_key"],
         "extra": {"workspace_id": box["workspace_id"], "reports_url": box["reports_url"]}})  # fmt: skip
    os.environ["AIRFLOW_CONN_STRIPE_DEFAULT"] = json.dumps(
        {"conn_type": "http", "host": stripe_url, "password": "sk_test_sandbox",
         "extra": {"max_network_retries": 2, "timeout": 60}})  # fmt: skip
    forget_known_secrets()
    base = box["url"]
    try:
        try:
            sync.run_all("bench-writeback-clockify")
            with connect() as conn:
                billing_config.apply(conn, billing_config.parse({"defaults": {"require_approval": False}}))
                conn.execute(
                    "INSERT INTO closeout_data.billing_clients (client_key, name, email, billing_period, currency, "
                    "grouping, require_approval, payment_terms_days, rounding, publish_policy, config_hash) "
                    "SELECT DISTINCT ON (client_key) client_key, 'Client ' || client_key, "
                    "replace(client_key, ':', '-') || '@clients.example', 'monthly', 'USD', 'project', false, 30, "
                    "'exact', 'auto', 'bench' FROM closeout.time_entries WHERE client_key IS NOT NULL "
                    "ORDER BY client_key ON CONFLICT (client_key) DO NOTHING")  # fmt: skip
                conn.commit()
                drafting.refresh_drafts(conn)
                conn.commit()
                with contextlib.suppress(publish.PublicationsStopped):
                    publish.publish(conn, StripeHook(), as_of=date.today())
                conn.commit()
        finally:
            stripe_proc.terminate()
            stripe_proc.wait(10)
        import requests

        requests.post(f"{base}/_sandbox/reset_stats", json={}, timeout=60).raise_for_status()
        started = time.perf_counter()
        summary = tasks.writeback_clockify()
        seconds = time.perf_counter() - started
        log = requests.get(f"{base}/_sandbox/stats", timeout=60).json()["log"]
        with connect() as conn:
            invoices, ids, minimum = conn.execute(
                "SELECT count(*), coalesce(sum(n), 0), coalesce(sum(ceil(n / 1000.0)), 0) FROM ("
                "SELECT i.invoice_id, count(*) AS n FROM closeout_data.invoices i "
                "JOIN closeout_data.invoice_line_entries e ON e.invoice_id = i.invoice_id AND e.valid_to IS NULL "
                "AND e.source = 'clockify' AND e.amount_minor > 0 "
                "WHERE i.status IN ('open', 'paid') AND i.stripe_invoice_id IS NOT NULL GROUP BY 1) x"
            ).fetchone()  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(30)
    writes = [r for r in log if r[0] == "PATCH"]
    kinds = Counter(f"{r[0]} {'invoiced flags' if r[0] == 'PATCH' else 'other'}" for r in log)
    batch = int(os.environ.get("CLOSEOUT_CLOCKIFY_INVOICED_BATCH", "500"))
    allowed = len(log) / CLOCKIFY_PER_SECOND
    return {"generated_entries": entries, "issued_invoices": int(invoices), "billed_entry_ids": int(ids),
            "batch": batch, "summary": summary, "requests_by_kind": dict(kinds), "requests": len(log),
            "throttled_429": sum(1 for r in log if int(r[2]) == 429),
            "flag_requests": len(writes), "minimum_flag_requests_at_1000_ids": int(minimum),
            "flag_requests_per_1000_ids": round(len(writes) / int(ids) * 1000, 2) if ids else None,
            "seconds": round(seconds, 2), "rate_limit_allows_seconds": round(allowed, 2),
            "ratio": round(seconds / allowed, 2) if allowed else None}  # fmt: skip


def harvest_conn(url: str, max_requests: int, per_seconds: float) -> str:
    return json.dumps({"conn_type": "http", "host": url, "password": "sandbox-token",
                       "extra": {"account_id": "123456", "max_requests": max_requests, "per_seconds": per_seconds,
                                 "per_page": PAGE_SIZE}})  # fmt: skip


def build_month(harvest_url: str, stripe_url: str, seed: int) -> dict[str, Any]:
    """Sync, draft, publish, pay, credit and learn the events, through closeout (not timed)."""
    import contextlib

    import stripe
    from closeout.billing import config as billing_config
    from closeout.billing import drafting
    from closeout.payments import events, publish
    from closeout.payments.cash import tasks as cash_tasks
    from closeout.payments.hook import StripeHook
    from closeout.trackers.harvest import sync
    from closeout.trackers.settings import SyncSettings
    from closeout.warehouse.db import connect


    started = time.perf_counter()
    sync_summary = sync.run_all("bench-writeback", SyncSettings(sweep="never"))
    with connect() as conn:
        billing_config.apply(conn, billing_config.parse({"defaults": {"require_approval": False}}))
        conn.execute(  # every client's name, currency and e-mail, as a client file would give them
            "INSERT INTO closeout_data.billing_clients (client_key, name, email, billing_period, currency, grouping, "
            "require_approval, payment_terms_days, rounding, publish_policy, config_hash) "
            "SELECT DISTINCT ON (client_key) client_key, 'Client ' || client_key, "
            "replace(client_key, ':', '-') || '@clients.example', 'monthly', currency, 'project', false, 30, "
            "'exact', 'auto', 'bench' FROM closeout.time_entries ORDER BY client_key "
            "ON CONFLICT (client_key) DO NOTHING")  # fmt: skip
        conn.commit()
        drafted = drafting.refresh_drafts(conn)
        conn.commit()
        with contextlib.suppress(publish.PublicationsStopped):  # a few KWD amounts Stripe cannot take
            publish.publish(conn, StripeHook(), as_of=date.today())
        conn.commit()
        issued = [r[0] for r in conn.execute(
            "SELECT stripe_invoice_id FROM closeout_data.invoices WHERE status = 'open' ORDER BY invoice_id")]
        rng = random.Random(seed)
        client = stripe.StripeClient("sk_test_sandbox", base_addresses={"api": stripe_url}, max_network_retries=2)
        credited = issued[len(issued) // 200 :: round(1 / CREDIT_NOTE_SHARE)]  # about 1 in 100, at least one
        for stripe_id in credited:
            invoice = client.v1.invoices.retrieve(stripe_id)
            step = 10 if invoice.currency == "kwd" else 1  # Stripe takes KWD only in multiples of 10 fils
            amount = max(step, invoice.amount_due // 10 // step * step)
            client.v1.credit_notes.create(params={"invoice": stripe_id, "amount": amount})
        paying = [s for s in issued if rng.random() < PAID_SHARE]
        _pay(stripe_url, paying)
        events.backfill(conn, StripeHook())
        events.apply(conn, StripeHook())
        conn.commit()
    cash_tasks.sync_cash("bench-writeback")  # credit notes, refunds and the rest of the cash, as the events DAG does
    return {"seconds": round(time.perf_counter() - started, 1), "sync_records": sync_summary.get("records"),
            "drafts_changed": drafted.as_dict().get("invoices_changed") if hasattr(drafted, "as_dict") else None,
            "issued": len(issued), "credit_notes_made": len(credited), "payments_made": len(paying)}  # fmt: skip


def _pay(stripe_url: str, stripe_ids: list[str]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import requests

    session = requests.Session()

    def pay(stripe_id: str) -> None:
        session.post(f"{stripe_url}/_sandbox/invoices/{stripe_id}/pay", json={}, timeout=60).raise_for_status()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(pay, stripe_ids))


def warehouse_month() -> dict[str, Any]:
    """What the write-back has to mirror, and the documented minimum of requests for it (see the module doc)."""
    from closeout.warehouse.db import connect

    with connect() as conn:
        row = conn.execute("""
            WITH inv AS (
                SELECT i.invoice_id FROM closeout_data.invoices i
                WHERE i.status IN ('open', 'paid') AND i.stripe_invoice_id IS NOT NULL
                  AND (EXISTS (SELECT 1 FROM closeout_data.invoice_line_entries e WHERE e.invoice_id = i.invoice_id
                               AND e.valid_to IS NULL AND e.source = 'harvest')
                       OR EXISTS (SELECT 1 FROM closeout.invoice_line_expenses x WHERE x.invoice_id = i.invoice_id
                                  AND x.source = 'harvest'))),
            projects AS (
                SELECT e.invoice_id, v.project_source_id, 'time' AS kind
                FROM closeout_data.invoice_line_entries e
                JOIN closeout_data.time_entry_versions v
                  ON v.source = e.source AND v.source_id = e.source_id AND v.version = e.entry_version
                WHERE e.valid_to IS NULL AND e.source = 'harvest' AND e.amount_minor > 0
                UNION
                SELECT x.invoice_id, v.project_source_id, 'expense'
                FROM closeout.invoice_line_expenses x
                JOIN closeout_data.expense_versions v
                  ON v.source = x.source AND v.source_id = x.source_id AND v.version = x.version
                WHERE x.source = 'harvest' AND x.amount_minor > 0),
            listings AS (  -- the import spans every billed project for time and for expenses: so must the check
                SELECT invoice_id, count(DISTINCT project_source_id) AS projects,
                       bool_or(kind = 'time') AS has_time, bool_or(kind = 'expense') AS has_expense
                FROM projects GROUP BY invoice_id),
            proj_per_invoice AS (
                SELECT invoice_id, count(DISTINCT project_source_id) AS projects FROM projects GROUP BY invoice_id)
            SELECT (SELECT count(*) FROM inv),
                   (SELECT count(*) FROM inv JOIN closeout_data.invoices i USING (invoice_id) WHERE i.status = 'paid'),
                   (SELECT count(*) FROM closeout_data.invoice_payments p JOIN inv USING (invoice_id)
                     WHERE p.kind = 'payment' AND p.amount_minor > 0),
                   (SELECT count(*) FROM closeout_data.credit_notes n
                     JOIN closeout_data.invoices i
                       ON i.invoice_id = coalesce(n.invoice_id, (SELECT s.invoice_id FROM closeout_data.invoices s
                                                                  WHERE s.stripe_invoice_id = n.stripe_invoice_id))
                     JOIN inv ON inv.invoice_id = i.invoice_id
                     WHERE n.status <> 'void' AND n.voided_at IS NULL AND n.amount_minor > 0),
                   (SELECT coalesce(sum(projects) FILTER (WHERE has_time), 0)
                      FROM listings JOIN inv USING (invoice_id)),
                   (SELECT coalesce(sum(projects) FILTER (WHERE has_expense), 0)
                      FROM listings JOIN inv USING (invoice_id)),
                   (SELECT count(*) FROM (SELECT DISTINCT invoice_id FROM projects WHERE kind = 'expense') x),
                   (SELECT count(*) FROM listings JOIN inv USING (invoice_id) WHERE has_time),
                   (SELECT coalesce(avg(projects), 0) FROM proj_per_invoice),
                   (SELECT count(*) FROM closeout_data.invoice_line_entries WHERE valid_to IS NULL
                     AND source = 'harvest' AND amount_minor > 0),
                   (SELECT count(*) FROM closeout.invoice_line_expenses WHERE source = 'harvest')
        """).fetchone()  # fmt: skip
    keys = ("invoices", "paid", "payments", "credit_notes", "time_listings", "expense_listings",
            "invoices_with_expenses", "invoices_with_time", "projects_per_invoice", "billed_entries",
            "billed_expenses")  # fmt: skip
    month = dict(zip(keys, row, strict=True))
    month = {k: int(v) for k, v in month.items() if k != "projects_per_invoice"} | {
        "projects_per_invoice": round(float(month["projects_per_invoice"]), 2)}
    return month


def classify(method: str, target: str) -> str:
    path = target.split("?", 1)[0].rstrip("/")
    parts = path.split("/")
    if method == "POST" and path.endswith("/v2/invoices"):
        return "invoice create"
    if method == "POST" and path.endswith("/messages"):
        return "message send"
    if method == "POST" and path.endswith("/payments"):
        return "payment"
    if method == "PATCH" and len(parts) >= 2 and parts[-2] == "invoices":
        return "credit note (negative line)"
    if method == "GET" and path.endswith("/v2/invoices"):
        return "read: invoice listing"
    if method == "GET" and path.endswith("/v2/time_entries"):
        return "read: uninvoiced time listing"
    if method == "GET" and path.endswith("/v2/expenses"):
        return "read: uninvoiced expense listing"
    return f"other: {method} {path}"


def by_path_kinds(by_path: dict[str, int], created: int) -> Counter[str]:
    """Requests by kind from per-path counts: ``/v2/invoices`` holds both creates and listing pages; every 201 is
    a create, a send message or a payment (Harvest's answer to a POST), so creates are the 201s less those two."""
    kinds: Counter[str] = Counter()
    for path, count in by_path.items():
        parts = path.rstrip("/").split("/")
        if path.endswith("/messages"):
            kinds["message send"] += count
        elif path.endswith("/payments"):
            kinds["payment"] += count
        elif len(parts) >= 2 and parts[-2] == "invoices":
            kinds["credit note (negative line)"] += count  # PATCH; a lookup GET only follows a lost answer
        elif path.endswith("/v2/time_entries"):
            kinds["read: uninvoiced time listing"] += count
        elif path.endswith("/v2/expenses"):
            kinds["read: uninvoiced expense listing"] += count
        elif not path.endswith("/v2/invoices"):
            kinds[f"other: {path}"] += count
    kinds["invoice create"] = created - kinds["message send"] - kinds["payment"]
    kinds["read: invoice listing"] = by_path.get("/v2/invoices", 0) - kinds["invoice create"]
    return kinds


def run_writeback(url: str, scale: float) -> dict[str, Any]:
    """The real write-back (tasks.writeback_harvest, as the DAG calls it) under the documented rate limit."""
    from closeout.masking import forget_known_secrets
    from closeout.writeback import tasks

    window = RATE_SECONDS * scale
    control(url, "POST", "rate_limit", {"requests": RATE_REQUESTS, "seconds": window})
    os.environ["AIRFLOW_CONN_HARVEST_DEFAULT"] = harvest_conn(url, RATE_REQUESTS, window)
    forget_known_secrets()
    control(url, "POST", "reset_stats")
    runs: list[dict[str, Any]] = []
    started = time.perf_counter()
    while True:
        summary = tasks.writeback_harvest()
        runs.append(summary)
        if not (summary.get("imported") or summary.get("explicit") or summary.get("sent")
                or summary.get("payments") or summary.get("credit_notes") or summary.get("pending")):  # fmt: skip
            break
        if len(runs) > 100:
            raise RuntimeError(f"the write-back did not finish in 100 runs: {runs[-1]}")
    seconds = time.perf_counter() - started
    stats = control(url, "GET", "stats")
    control(url, "POST", "rate_limit", {"off": True})
    by_kind: Counter[str] = Counter()
    statuses: Counter[int] = Counter({int(k): v for k, v in stats["status_counts"].items()})
    if len(stats["log"]) >= stats["requests"]:  # the whole log: classify every request
        for method, target, _status in stats["log"]:
            by_kind[classify(method, target)] += 1
        if by_kind != by_path_kinds(stats["by_path"], statuses.get(201, 0)):  # the fallback below must agree
            raise RuntimeError(f"per-path counting disagrees with the log: {by_kind} {stats['by_path']}")
    else:  # the sandbox keeps only the last 10,000: classify from its complete per-path and per-status counters
        by_kind = by_path_kinds(stats["by_path"], statuses.get(201, 0))
    return {"seconds": round(seconds, 2), "window_seconds": window, "runs": len(runs), "run_summaries": runs,
            "requests_by_kind": dict(sorted(by_kind.items())), "requests": sum(by_kind.values()),
            "status_counts": {str(k): v for k, v in sorted(statuses.items())},
            "throttled_429": statuses.get(429, 0)}  # fmt: skip


def harvest_state(url: str) -> dict[str, Any]:
    """What Harvest shows after the write-back (control calls, not counted in the stats)."""
    invoices = control(url, "GET", "invoices")
    states = Counter(i["state"] for i in invoices)
    partly = [{k: i.get(k) for k in ("id", "number", "currency", "amount", "due_amount", "state")}
              for i in invoices
              if i["state"] != "paid" and str(i.get("due_amount")) != str(i.get("amount"))]  # fmt: skip
    return {"invoices": len(invoices), "states": dict(states), "open_with_payments": partly[:20],
            "open_with_payments_count": len(partly)}  # fmt: skip


def writeback_rows() -> dict[str, Any]:
    from closeout.warehouse.db import connect

    with connect() as conn:
        rows = conn.execute("SELECT object_kind, coalesce(method, '-'), status, count(*) FROM "
                            "closeout.tracker_writebacks GROUP BY 1, 2, 3 ORDER BY 1, 2, 3").fetchall()  # fmt: skip
    return {f"{k}/{m}/{s}": n for k, m, s, n in rows}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--invoices", type=int, default=10_000)
    parser.add_argument("--window-scale", type=float, default=0.05,
                        help="Harvest's 15 s window times this (0.05: 100 requests per 0.75 s); reported")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--no-write", action="store_true", help="print only; write no results file")
    parser.add_argument("--clockify-entries", type=int, default=20_000,
                        help="entries in the Clockify month whose invoiced flags are written (0: skip Clockify)")
    parser.add_argument("--skip-harvest", action="store_true", help="only the Clockify part (for trying it)")
    parser.add_argument("--rederive", default=None, help=argparse.SUPPRESS)  # recompute minimums of a results file
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the Harvest sandbox process
    parser.add_argument("--serve-clockify", action="store_true", help=argparse.SUPPRESS)  # the Clockify one
    args, _ = parser.parse_known_args(argv)
    if args.serve:
        sys.exit(serve(args.invoices, args.seed))
    if args.serve_clockify:
        sys.exit(serve_clockify(args.clockify_entries, args.seed))

    sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]
    if args.rederive:
        return rederive(args)
    if args.skip_harvest:
        report: dict[str, Any] = {"benchmark": "writeback", "date": datetime.now(UTC).isoformat(timespec="seconds"),
                                  "machine": machine()}  # fmt: skip
    else:
        report = harvest_part(args)
    if args.clockify_entries:
        print(f"Clockify: a month of {args.clockify_entries:,} entries, sync, drafts, Stripe, invoiced flags ...",
              flush=True)  # fmt: skip
        report["clockify"] = clockify_phase(args.clockify_entries, args.seed)
    report["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    print_table(report)
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y-%m-%d")
        path = RESULTS / f"writeback-{stamp}-{platform.node()}.json"
        path.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"results written to {path.relative_to(ROOT)}")
    return report


def rederive(args: argparse.Namespace) -> dict[str, Any]:
    """Recompute a results file's minimum from its still-present warehouse (``closeout_bench_writeback``) and its
    recorded requests, when the derivation of the minimum changed after the run; nothing is measured again."""
    from closeout.warehouse.embedded import ENV_VAR, ensure_warehouse

    path = ROOT / args.rederive
    old = json.loads(path.read_text())
    ensure_warehouse()
    os.environ["AIRFLOW_CONN_CLOSEOUT_WAREHOUSE"] = json.dumps({**json.loads(os.environ[ENV_VAR]),
                                                                "schema": "closeout_bench_writeback"})  # fmt: skip
    month = warehouse_month()
    wb = {**old["writeback"], "run_summaries": old["run_summaries"]}
    made = sum(run["requests"] for run in old["run_summaries"])  # the client's own count per run: complete
    if sum(wb["requests_by_kind"].values()) < made:  # recorded from a log the sandbox had cut to its last 10,000
        wb = {**wb, **writes_and_reads(old, month, made)}
    args.invoices, args.window_scale = old["invoices_asked"], old["rate_limit"]["window_scale"]
    fresh = make_report(args, old["setup"], month, wb, old["harvest_after"], old["tracker_writebacks"])
    report = {**old, **{k: v for k, v in fresh.items() if k not in ("date", "machine")},
              "minimum_rederived_at": datetime.now(UTC).isoformat(timespec="seconds")}  # fmt: skip
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print_table(report)
    return report


def writes_and_reads(old: dict[str, Any], month: dict[str, Any], made: int) -> dict[str, Any]:
    """Requests by kind for a run whose sandbox log was cut: every write is a done ``tracker_writebacks`` row made
    by its call (no lookups, nothing pending or failed), the invoice listing reads one page per 2,000 invoices
    mirrored before each run, and the rest are the uninvoiced listings; they are split per billed project only
    when that accounts for every request exactly (else reported together)."""
    rows = old["tracker_writebacks"]
    writes = {"invoice create": rows.get("invoice/import/done", 0) + rows.get("invoice/line_items/done", 0),
              "message send": rows.get("message/message/done", 0),
              "payment": rows.get("payment/payment/done", 0),
              "credit note (negative line)": rows.get("credit_note/negative_line_item/done", 0)}  # fmt: skip
    pages, mirrored = 0, 0
    for run in old["run_summaries"]:
        pages += max(1, math.ceil(mirrored / PAGE_SIZE))
        mirrored += run.get("imported", 0) + run.get("explicit", 0) + run.get("found_after_lost_answer", 0)
    reads = made - sum(writes.values()) - pages
    kinds = {**writes, "read: invoice listing": pages}
    if reads == month["time_listings"] + month["expense_listings"]:
        kinds.update({"read: uninvoiced time listing": month["time_listings"],
                      "read: uninvoiced expense listing": month["expense_listings"]})  # fmt: skip
    else:
        kinds["read: uninvoiced time and expense listings"] = reads
    return {"requests": made, "requests_by_kind": dict(sorted(kinds.items())),
            "requests_by_kind_source": "derived: the client's request count per run (complete), writes from "
            "tracker_writebacks rows, listing pages from the runs; the sandbox log kept only the last 10,000 "
            "requests (their classification is in log_tail_by_kind)",
            "log_tail_by_kind": old["writeback"]["requests_by_kind"]}  # fmt: skip


def harvest_part(args: argparse.Namespace) -> dict[str, Any]:
    """The Harvest month: set up through closeout, then the write-back under the rate limit."""
    from benchmarks.stripe_payments import CONCURRENCY, start_stripe_sandbox

    os.environ["AIRFLOW_CONN_CLOSEOUT_WAREHOUSE"] = fresh_database("closeout_bench_writeback")
    from closeout.warehouse.db import connect
    from closeout.warehouse.migrations import apply_migrations

    with connect(autocommit=True) as admin:
        apply_migrations(admin)
    print(f"a month of about {args.invoices:,} invoices: Harvest sandbox, sync, drafts, Stripe ...", flush=True)
    harvest, url = start_sandbox_process(
        "benchmarks.writeback", ["--serve", "--invoices", str(args.invoices), "--seed", str(args.seed)],
        "HARVEST_SANDBOX_URL")  # fmt: skip
    stripe_proc, stripe_url = start_stripe_sandbox()
    os.environ["AIRFLOW_CONN_HARVEST_DEFAULT"] = harvest_conn(url, 0, RATE_SECONDS)
    os.environ["AIRFLOW_CONN_STRIPE_DEFAULT"] = json.dumps(
        {"conn_type": "http", "host": stripe_url, "password": "sk_test_sandbox",
         "extra": {"concurrency": CONCURRENCY, "max_network_retries": 2, "timeout": 60}})  # fmt: skip
    try:
        try:
            setup = build_month(url, stripe_url, args.seed)
        finally:
            stripe_proc.terminate()
            stripe_proc.wait(10)
        month = warehouse_month()
        print(f"  set up in {setup['seconds']:.0f} s: {month['invoices']:,} issued invoices; write-back ...",
              flush=True)  # fmt: skip
        writeback = run_writeback(url, args.window_scale)
        after = harvest_state(url)
    finally:
        harvest.terminate()
        harvest.wait(30)
    return make_report(args, setup, month, writeback, after, writeback_rows())


def make_report(args: argparse.Namespace, setup: dict, month: dict, wb: dict, after: dict, rows: dict) -> dict:
    n = month["invoices"] or 1
    kinds = wb["requests_by_kind"]
    listing_pages, mirrored = 0, 0  # each run first lists every Harvest invoice mirrored before it: >= 1 page
    for run in wb["run_summaries"]:
        listing_pages += max(1, math.ceil(mirrored / PAGE_SIZE))
        mirrored += run.get("imported", 0) + run.get("explicit", 0) + run.get("found_after_lost_answer", 0)
    per_invoice_min = {
        "invoice create": month["invoices"],
        "message send": month["invoices"],
        "payment": month["payments"],
        "credit note (negative line)": month["credit_notes"],
        # Harvest filters uninvoiced time and expenses by client_id: one listing of the invoice's client over the
        # billed range holds every item the import of its projects would bill (a Harvest invoice has one client)
        "read: uninvoiced time listing": month["invoices_with_time"],
        "read: uninvoiced expense listing": month["invoices_with_expenses"],
    }
    per_project = {"read: uninvoiced time listing": month["time_listings"],
                   "read: uninvoiced expense listing": month["expense_listings"]}  # fmt: skip
    minimum = sum(per_invoice_min.values()) + listing_pages
    over = {k: kinds.get(k, 0) - v for k, v in per_invoice_min.items() if kinds.get(k, 0) != v}
    if kinds.get("read: invoice listing", 0) != listing_pages:
        over["read: invoice listing"] = kinds.get("read: invoice listing", 0) - listing_pages
    others = {k: v for k, v in kinds.items() if k.startswith("other")}
    allowed = wb["requests"] / RATE_REQUESTS * wb["window_seconds"]
    return {
        "benchmark": "writeback",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "invoices_asked": args.invoices,
        "rate_limit": {"requests": RATE_REQUESTS, "documented_window_seconds": RATE_SECONDS,
                       "window_scale": args.window_scale, "window_seconds": wb["window_seconds"]},
        "setup": setup,
        "month": month,
        "writeback": {k: v for k, v in wb.items() if k != "run_summaries"},
        "run_summaries": wb["run_summaries"],
        "minimum": {"per_kind": per_invoice_min, "invoice_listing_pages_amortised": listing_pages, "total": minimum,
                    "per_invoice": round(minimum / n, 3)},
        "requests_per_invoice": round(wb["requests"] / n, 3),
        "ratio_to_minimum": round(wb["requests"] / minimum, 3) if minimum else None,
        "above_minimum_by_kind": over,
        "reads_if_listed_per_billed_project": per_project,
        "other_requests": others,
        "elapsed_vs_rate_limit": {"seconds": wb["seconds"], "rate_limit_allows_seconds": round(allowed, 2),
                                  "ratio": round(wb["seconds"] / allowed, 2) if allowed else None,
                                  "at_documented_window_seconds": round(wb["requests"] / RATE_REQUESTS * RATE_SECONDS),
                                  },
        "harvest_after": after,
        "tracker_writebacks": rows,
        "targets": {"no_429": wb["throttled_429"] == 0,
                    "at_minimum": wb["requests"] <= minimum,
                    "all_mirrored": after["invoices"] == month["invoices"]},
    }


def print_table(r: dict) -> None:
    rows = harvest_rows(r) if "month" in r else []
    if "clockify" in r:
        c = r["clockify"]
        rows += [
            ("Clockify billed entry ids", f"{c['billed_entry_ids']:,}", f"on {c['issued_invoices']:,} issued invoices"),
            ("  invoiced-flag requests", f"{c['flag_requests']:,}", f"batch {c['batch']}; at 1,000 ids a request: "
             f"{c['minimum_flag_requests_at_1000_ids']:,}"),
            ("  per 1,000 ids", str(c["flag_requests_per_1000_ids"]), ""),
            ("  429s", str(c["throttled_429"]), "must be 0"),
            ("  elapsed", f"{c['seconds']:.1f} s", f"50 requests/s allows {c['rate_limit_allows_seconds']:.1f} s: "
             f"ratio {c['ratio']}"),
        ]  # fmt: skip
    width = max(len(a) for a, _, _ in rows)
    print()
    for a, b, c_ in rows:
        print(f"{a:<{width}}  {b:>14}  {c_}")


def harvest_rows(r: dict) -> list[tuple[str, str, str]]:
    m, wb, e = r["month"], r["writeback"], r["elapsed_vs_rate_limit"]
    rows = [
        ("issued invoices", f"{m['invoices']:,}", f"{m['paid']:,} paid, {m['payments']:,} payments, "
         f"{m['credit_notes']} credit notes, {m['invoices_with_expenses']} with expenses"),
        ("billed items", f"{m['billed_entries']:,}", f"entries, {m['billed_expenses']} expenses, "
         f"{m['projects_per_invoice']} projects/invoice"),
        ("rate limit", f"{r['rate_limit']['requests']}/{wb['window_seconds']:g} s",
         f"Harvest's 100/15 s x {r['rate_limit']['window_scale']}"),
    ]  # fmt: skip
    for kind, count in wb["requests_by_kind"].items():
        least = r["minimum"]["per_kind"].get(kind, r["minimum"]["invoice_listing_pages_amortised"]
                                             if kind == "read: invoice listing" else "-")  # fmt: skip
        rows.append((f"  {kind}", f"{count:,}", f"minimum {least}"))
    rows += [
        ("requests", f"{wb['requests']:,}", f"minimum {r['minimum']['total']:,} ({wb['runs']} runs)"),
        ("requests per invoice", f"{r['requests_per_invoice']:.3f}", f"minimum {r['minimum']['per_invoice']:.3f}, "
         f"ratio {r['ratio_to_minimum']}"),
        ("429s", str(wb["throttled_429"]), "must be 0"),
        ("elapsed", f"{e['seconds']:.1f} s", f"limit allows {e['rate_limit_allows_seconds']:.1f} s: "
         f"ratio {e['ratio']} (at 15 s: {e['at_documented_window_seconds']:,} s)"),
        ("Harvest invoices", f"{r['harvest_after']['invoices']:,}", json.dumps(r["harvest_after"]["states"])),
        ("targets", json.dumps(r["targets"]), ""),
    ]  # fmt: skip
    return rows


if __name__ == "__main__":
    main()
