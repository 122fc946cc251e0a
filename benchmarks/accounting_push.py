"""Benchmark: a month of invoices, their customers, payments and journals pushed to the Xero and QuickBooks sandboxes.

Setup (not timed): a fresh warehouse; about ``--invoices`` drafts for ``--invoices``/2 clients drafted for real
(``benchmarks.stripe_payments.seed_drafts``), published by closeout to a Stripe sandbox in its own process, every
invoice paid once, Stripe's events and cash read back and every journal posted (invoices, payments, Stripe fees,
FX conversions).
The account is a USD one, as the push's ``home_currency``: Stripe settles the charges of the month's EUR and JPY
invoices into USD at an exchange rate (``SETTLEMENT_RATES``, as a US account without a bank account in those
currencies does), so each foreign invoice, payment and fee carries the rate the ledger used (its ``fx_conversion``
journal moves the cash to USD) and the whole month goes; without it the sandbox settles each currency in itself,
there is no rate to book a foreign document at, and the push holds them (``no_ledger_rate``).
Stripe's fees (one ledger journal per payment) are pushed as one journal per day and currency, each carrying its
ledger journals (``closeout.accounting_push_members``): the result reports both the group journals pushed and the
ledger fee journals they carry, and calls per ledger object (customers, invoices, payments, FX conversion journals,
fee journals).

Timed, per accounting system, through closeout's own code (``closeout.accounting.links`` then
``closeout.accounting.push``) against a sandbox that enforces the vendor's documented limits:

* **Xero**: 60 calls a minute and 5 at once, the minute scaled to ``--xero-window`` seconds so the run takes seconds,
  not an hour (the day's 5,000 is reported, not enforced: the count is the budget). API calls are counted at the
  hooks (token refreshes excluded) and set against the budget of 600 and the documented minimum: one array of 50
  per 50 objects of a kind.
* **QuickBooks**: 500 requests and 40 batch requests a minute and 10 at once, the minute scaled to ``--window``.
  The time is set against what the limits allow for the calls made (``max(calls / 500, batch calls / 40)`` windows;
  budget: at most 1.2x), and the calls against the minimum (one batch of 30 per 30 objects of a kind).

Prints a table and writes ``benchmarks/results/accounting_push-<date>-<machine>.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from datetime import date
from typing import Any

from benchmarks.harvest_ingest import RESULTS, ROOT, fresh_database, machine
from benchmarks.stripe_payments import CONCURRENCY, seed_drafts, start_stripe_sandbox

XERO_BUDGET_CALLS = 600
QUICKBOOKS_BUDGET_RATIO = 1.2
HOME_CURRENCY = "USD"  # the books' home currency (the push's default ``home_currency``) and the account's
# USD per major unit of each foreign currency the seed bills in (benchmarks.drafting: EUR, JPY and KWD, whose
# invoices Stripe mostly cannot take): what Stripe settles those charges into USD at
SETTLEMENT_RATES = {"EUR": "1.0835", "JPY": "0.0067", "KWD": "3.2500"}


def settle_in_home_currency(url: str, conn: Any) -> dict[str, str]:
    """Stripe settles every foreign currency the month's invoices are in into the home currency at a rate, before
    anything is paid (a charge converts at the rate of its time): the rate the ledger then uses for each document.
    A currency without a rate here stops the benchmark rather than leave its invoices held."""
    import requests

    currencies = [r[0] for r in conn.execute(
        "SELECT DISTINCT currency FROM closeout_data.invoices WHERE currency <> %s AND stripe_invoice_id IS NOT NULL "
        "ORDER BY 1", (HOME_CURRENCY,)).fetchall()]  # fmt: skip
    missing = [c for c in currencies if c not in SETTLEMENT_RATES]
    if missing:
        raise SystemExit(f"no settlement rate into {HOME_CURRENCY} for {missing}: add it to SETTLEMENT_RATES")
    for currency in currencies:
        requests.post(f"{url}/_sandbox/settlement", timeout=60, json={
            "presentment": currency.lower(), "settlement": HOME_CURRENCY.lower(),
            "rate": SETTLEMENT_RATES[currency]}).raise_for_status()  # fmt: skip
    return {c: SETTLEMENT_RATES[c] for c in currencies}


def pay_once(url: str, conn: Any) -> int:
    """Every open invoice paid in full, once (the month's payments)."""
    from concurrent.futures import ThreadPoolExecutor

    import requests

    rows = conn.execute("SELECT stripe_invoice_id FROM closeout_data.invoices WHERE status = 'open'").fetchall()
    session = requests.Session()

    def pay(row: tuple[str]) -> int:
        session.post(f"{url}/_sandbox/invoices/{row[0]}/pay", json={}, timeout=60).raise_for_status()
        return 1

    with ThreadPoolExecutor(4) as pool:
        return sum(pool.map(pay, rows))


def build_month(url: str, invoices: int) -> dict[str, Any]:
    """The chain up to the ledger, through closeout (not timed)."""
    from closeout.ledger import tasks as ledger_tasks
    from closeout.payments import events, publish
    from closeout.payments.cash import tasks as cash_tasks
    from closeout.payments.hook import StripeHook
    from closeout.warehouse.db import connect

    started = time.perf_counter()
    with connect() as conn:
        seed = seed_drafts(conn, invoices)
        with contextlib.suppress(publish.PublicationsStopped):  # a few KWD amounts Stripe cannot take
            publish.publish(conn, StripeHook(), as_of=date.today())
        # the seed drafts from entries only: give every billed client its name and e-mail, as a client file would
        conn.execute(
            "INSERT INTO closeout_data.billing_clients (client_key, name, email, billing_period, currency, grouping, "
            "require_approval, payment_terms_days, rounding, publish_policy, config_hash) "
            "SELECT DISTINCT ON (client_key) client_key, 'Client ' || client_key, "
            "replace(client_key, ':', '-') || '@clients.example', 'monthly', currency, 'project', false, 30, "
            "'exact', 'auto', 'bench' FROM closeout_data.invoices ORDER BY client_key "
            "ON CONFLICT (client_key) DO NOTHING")  # fmt: skip
        conn.commit()
        settlement = settle_in_home_currency(url, conn)
        payments = pay_once(url, conn)
        events.backfill(conn, StripeHook())
        events.apply(conn, StripeHook())
    cash_tasks.sync_cash("bench-accounting-push")
    ledger_tasks.post_journals("bench-accounting-push")
    with connect() as conn:
        counts = dict(conn.execute("SELECT kind, count(*) FROM closeout.ledger_journals GROUP BY kind").fetchall())
        published = conn.execute(
            "SELECT count(*), count(DISTINCT client_key) FROM closeout.invoices "
            "WHERE stripe_number IS NOT NULL AND status IN ('open', 'paid')").fetchone()  # fmt: skip
    return {"seconds": round(time.perf_counter() - started, 1), "drafts": seed["drafts"], "invoices": published[0],
            "clients": published[1], "payments": payments, "settled_into_home": settlement,
            "journals": counts}  # fmt: skip


def minimum_calls(objects: dict[str, int], per_call: int) -> int:
    return sum(math.ceil(n / per_call) for n in objects.values() if n)


def push_to(system: str, window: float) -> dict[str, Any]:
    """Links then push against a sandbox with the documented limits over a ``window``-second minute."""
    from closeout.accounting.links import customers_for, link_customers
    from closeout.accounting.push.run import books_for, push
    from closeout.masking import forget_known_secrets

    from sandbox.quickbooks import QuickBooksSandbox
    from sandbox.xero import XeroSandbox

    if system == "xero":
        sandbox: Any = XeroSandbox(per_minute=60, per_day=None, max_concurrent=5, minute_seconds=window)
        extra = {"tenant_id": sandbox.tenant_id, "minute_seconds": window, "calls_per_day": 1_000_000}
    else:
        sandbox = QuickBooksSandbox(requests_per_minute=500, batch_per_minute=40, max_concurrent=10,
                                    window_seconds=window)  # fmt: skip
        extra = {"realm_id": sandbox.realm_id, "minorversion": 75, "rate_window_seconds": window}
    sandbox.start()
    os.environ[f"AIRFLOW_CONN_{system.upper()}_DEFAULT"] = json.dumps({
        "conn_type": "http", "host": sandbox.base_url, "login": sandbox.client_id, "password": sandbox.client_secret,
        "extra": {**extra, "refresh_token": sandbox.first_refresh_token, "token_url": sandbox.token_url}})  # fmt: skip
    forget_known_secrets()
    try:
        started = time.perf_counter()
        customers = customers_for(system)
        linked = link_customers(customers)
        customers_seconds = time.perf_counter() - started
        books = books_for(system)
        run = push(books)
        seconds = time.perf_counter() - started
        customer_calls, push_calls = customers.hook.requests_sent, books.hook.requests_sent
        throttled = sandbox.stats()["throttled"]
    finally:
        sandbox.stop()
    from closeout.warehouse.db import connect

    with connect(autocommit=True) as conn:  # the ledger journals the pushed group journals carry
        members = conn.execute(
            "SELECT object_kind, count(*), count(DISTINCT closeout_ref) FROM closeout_data.accounting_push_members "
            "WHERE system = %s GROUP BY object_kind", (system,)).fetchall()  # fmt: skip
        carried = {kind: n for kind, n, _ in members}
        groups = sum(g for _, _, g in members)
        reasons = {f"{k}:{r}": n for k, r, n in conn.execute(
            "SELECT object_kind, reason, count(*) FROM closeout_data.accounting_push_exceptions "
            "WHERE system = %s AND resolved_at IS NULL GROUP BY 1, 2", (system,)).fetchall()}  # fmt: skip
    per_call = 50 if system == "xero" else 30
    objects = {"customer": len(linked.linked), **run.pushed}
    result: dict[str, Any] = {
        "seconds": round(seconds, 2), "customers_seconds": round(customers_seconds, 2), "objects": objects,
        "held": {k: len(v) for k, v in run.held.items()}, "calls": customer_calls + push_calls,
        "customer_calls": customer_calls, "push_calls": push_calls, "batches": run.batches,
        "customer_batches": getattr(linked, "create_batches", 0),
        "minimum_calls": minimum_calls(objects, per_call), "throttled": throttled, "window_seconds": window,
        "calls_per_object": round((customer_calls + push_calls) / max(1, sum(objects.values())), 3),
        "minimum_calls_per_object": round(minimum_calls(objects, per_call) / max(1, sum(objects.values())), 3),
        "held_reasons": reasons, "ledger_journals_carried": carried,
        # what finance counts: customers, invoices, payments, the journals pushed one by one (e.g. each currency of
        # an FX conversion) and, for each group journal (a day's fees), the ledger journals it carries
        "ledger_objects": sum(objects.values()) - groups + sum(carried.values()),
    }  # fmt: skip
    result["calls_per_ledger_object"] = round(result["calls"] / max(1, result["ledger_objects"]), 4)
    if system == "xero":
        result["budget_calls"] = XERO_BUDGET_CALLS
        result["within_budget"] = result["calls"] <= XERO_BUDGET_CALLS
    else:
        # a sliding window lets N calls through in ceil(N / limit) - 1 windows (the first window's worth at once)
        # customers are created through the batch endpoint too: their batches count against its 40 a minute
        batches = run.batches + getattr(linked, "create_batches", 0)
        single = customer_calls + push_calls - batches
        allowed = max(math.ceil((customer_calls + push_calls) / 500) - 1, math.ceil(batches / 40) - 1) * window
        result["single_calls"] = single
        result["allowed_seconds"] = round(allowed, 2)
        result["ratio_to_allowed"] = round(seconds / allowed, 2) if allowed else None
        result["within_budget"] = bool(allowed) and seconds / allowed <= QUICKBOOKS_BUDGET_RATIO
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--invoices", type=int, default=10_000)
    parser.add_argument("--window", type=float, default=20.0,
                        help="seconds that stand for QuickBooks' minute (long enough for its limits, not our "
                             "processing, to set the pace)")
    parser.add_argument("--xero-window", type=float, default=1.0, help="seconds that stand for Xero's minute")
    parser.add_argument("--no-write", action="store_true", help="print only; write no results file")
    args, _ = parser.parse_known_args(argv)
    sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]
    os.environ["AIRFLOW_CONN_CLOSEOUT_WAREHOUSE"] = fresh_database("closeout_bench_accounting_push")
    proc, url = start_stripe_sandbox()
    os.environ["AIRFLOW_CONN_STRIPE_DEFAULT"] = json.dumps(
        {"conn_type": "http", "host": url, "password": "sk_test_sandbox",
         "extra": {"concurrency": CONCURRENCY, "max_network_retries": 2, "timeout": 60}})  # fmt: skip
    from closeout.warehouse.db import connect
    from closeout.warehouse.migrations import apply_migrations

    with connect(autocommit=True) as admin:
        apply_migrations(admin)
    results: dict[str, Any] = {"benchmark": "accounting_push", "date": date.today().isoformat(),
                               "machine": machine()}  # fmt: skip
    try:
        results["month"] = build_month(url, args.invoices)
    finally:
        proc.terminate()
        proc.wait(10)
    results["xero"] = push_to("xero", args.xero_window)
    results["quickbooks"] = push_to("quickbooks", args.window)
    print_table(results)
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"accounting_push-{results['date']}-{results['machine']['host']}.json"
        path.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"results: {path.relative_to(ROOT)}")
    return results


def print_table(r: dict) -> None:
    m = r["month"]
    print(f"\nAccounting push: {m['invoices']:,} invoices of {m['clients']:,} clients, {m['payments']:,} payments, "
          f"journals {m['journals']} (setup {m['seconds']} s)")  # fmt: skip
    print(f"{'system':<12}{'seconds':>9}{'calls':>8}{'customers':>11}{'push':>7}{'minimum':>9}{'per object':>12}"
          f"{'minimum':>9}{'budget':>22}")  # fmt: skip
    for system in ("xero", "quickbooks"):
        s = r[system]
        budget = (f"<= {s['budget_calls']} calls: {'yes' if s['within_budget'] else 'NO'}" if system == "xero" else
                  f"{s['ratio_to_allowed']}x allowed: {'yes' if s['within_budget'] else 'NO'}")  # fmt: skip
        print(f"{system:<12}{s['seconds']:>9.2f}{s['calls']:>8,}{s['customer_calls']:>11,}{s['push_calls']:>7,}"
              f"{s['minimum_calls']:>9,}{s['calls_per_object']:>12}{s['minimum_calls_per_object']:>9}{budget:>22}")
        print(f"{'':<12}objects {s['objects']}, held {s['held']}, throttled {s['throttled']}")
        print(f"{'':<12}ledger journals carried by pushed journals {s.get('ledger_journals_carried')}, "
              f"calls per ledger object {s.get('calls_per_ledger_object')}, held reasons {s.get('held_reasons')}")


if __name__ == "__main__":
    main(sys.argv[1:])
