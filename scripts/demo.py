"""The closeout demo on embedded defaults: the whole time-to-cash chain, nothing to configure, nothing external.

1. the embedded Postgres (a fresh database), Airflow metadata in SQLite, a real ``airflow api-server`` started
   in the background, local SMTP and HTTP receivers standing in for finance's mailbox and chat;
2. Harvest, Toggl and Clockify sandboxes with generated work of the previous month, and a Stripe sandbox;
3. ``closeout_month_end_close`` of the previous month, a real DAG run (``dag.test``): final sync, lock,
   drafts, Stripe invoices, events, journals, accounting export, reconciliation, the close report;
4. customers pay (most in full, some in part, some not yet), closeout follows Stripe's events, reconciles
   green, and ``closeout_payouts`` releases contractor transfers;
5. someone changes an invoice in Stripe behind closeout's back: the reconciliation breaches, the gate pauses
   ``closeout_payouts`` through the API server, opens a payout hold and alerts finance (the e-mail is printed),
   and a payouts run triggered anyway releases nothing;
6. the close report written again with the payments, payouts and the hold; where it is, how to release the
   hold, how to query the warehouse.

    bash scripts/demo.sh [--entries N]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from contextlib import ExitStack
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo import runtime

runtime.configure()  # before anything imports Airflow

from demo import figures, story  # noqa: E402
from demo.airflow_api import ApiServer  # noqa: E402
from demo.receivers import MailCatcher, WebhookCatcher  # noqa: E402
from demo.runtime import FILES, ROOT, run_dag, say, step  # noqa: E402
from demo.sandboxes import Vendors, start_vendors, write_billing_config, write_payees  # noqa: E402

PAYOUTS = "closeout_payouts"
SMTP_LOGIN = ("closeout-alerts", secrets.token_urlsafe(12))  # fresh secrets every run: nothing to leak
WEBHOOK_TOKEN = secrets.token_urlsafe(12)


def wire_alerts(mail: MailCatcher, hooks: WebhookCatcher) -> None:
    """finance_smtp, finance_webhook and platform_webhook point at the local receivers."""
    os.environ["AIRFLOW_CONN_FINANCE_SMTP"] = json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": mail.port, "login": SMTP_LOGIN[0],
        "password": SMTP_LOGIN[1], "extra": {"from": "closeout@demo.example", "to": ["finance@demo.example"],
                                             "starttls": False, "timeout": 10}})  # fmt: skip
    for conn_id, path in (("finance_webhook", "finance"), ("platform_webhook", "platform")):
        os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(
            {"conn_type": "http", "host": hooks.url(path), "password": WEBHOOK_TOKEN})


def close_month(period: str) -> str:
    """``closeout_month_end_close`` for ``period``, as ops trigger it; prints what each step did."""
    from closeout.close import runs, tasks
    from closeout.warehouse.db import connect

    run_id = run_dag("closeout_month_end_close", {"period": period})
    with connect() as conn:
        for line in tasks.summary_lines(runs.load(conn, run_id)):
            line = line.strip()
            say(line if len(line) <= 110 else f"{line[:107]}...")
    return run_id


def refresh_report(period: str, close_run_id: str) -> str:
    """The close report written again through closeout's own report API, now that customers have paid and
    payouts ran: same location, the close's steps, today's figures. Returns where it is."""
    from closeout.close import report, runs, tasks
    from closeout.warehouse.db import connect

    with connect() as conn:
        run = runs.load(conn, close_run_id)
        built = report.build_report(conn, period, steps=tasks.report_steps(run), close_run_id=str(run.close_run_id))
    report.write_report(built)
    return report.report_url(period)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=1800, help="time entries generated over the month")
    args = parser.parse_args()
    started = time.perf_counter()
    today = datetime.now(UTC).date()  # the close decides whether a month is over in UTC
    period_start = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    period = period_start.strftime("%Y-%m")
    with ExitStack() as running:  # whatever happens, every server the demo started is stopped
        step("Warehouse and Airflow")
        runtime.prepare_warehouse()
        runtime.prepare_airflow()
        api = ApiServer(runtime.AIRFLOW_HOME).start()  # comes up while the close runs
        running.callback(api.stop)
        say("airflow api-server starting in the background (the payout gate pauses DAGs through it)")
        mail, hooks = MailCatcher(*SMTP_LOGIN).start(), WebhookCatcher().start()
        running.callback(mail.stop)
        running.callback(hooks.stop)
        wire_alerts(mail, hooks)
        say(f"finance's mailbox: SMTP on 127.0.0.1:{mail.port}; finance's chat: {hooks.url('finance')}")
        say(f"every DAG run below is a real Airflow run (dag.test); task logs in {runtime.LOGS.relative_to(ROOT)}/")

        step(f"Vendors: Harvest, Toggl Track, Clockify with {args.entries:,} entries of {period}; Stripe")
        vendors = start_vendors(period_start, args.entries)
        running.callback(vendors.stop)
        write_billing_config(FILES, vendors.datasets)
        write_payees(FILES, vendors.datasets)
        say(f"billing and payee files written to {FILES.relative_to(ROOT)}/ (CLOSEOUT_BILLING_CONFIG, "
            "CLOSEOUT_PAYEES_CONFIG)")  # fmt: skip
        api.wait_serialized()

        close_run = the_close(period, period_start)
        paid = customers_pay(vendors, period, period_start)
        transfers = payouts_released(api, vendors, period)
        discrepancy(vendors, paid["not yet"][0], period, mail, hooks, transfers)

        step("The close report, brought up to date (payments, payouts, the hold)")
        report = refresh_report(period, close_run)
        say(f"written again: {report}")
    finish(started, report)


def the_close(period: str, period_start: date) -> str:
    step(f"Month-end close of {period}: closeout_month_end_close")
    close_run = close_month(period)
    figures.capture()
    figures.invoices(period_start)
    figures.ledger()
    figures.recon()
    from closeout.close.report import report_url

    say(f"close report: {report_url(period)}")
    return close_run


def customers_pay(vendors: Vendors, period: str, period_start: date) -> dict[str, list[story.OpenInvoice]]:
    step("Customers pay in Stripe; closeout follows Stripe's events")
    paid = story.customers_pay(vendors.stripe, story.open_invoices(period_start))
    say(", ".join(f"{len(v)} {k}" for k, v in paid.items()))
    run_dag("closeout_stripe_events")
    say(f"invoices of {period}: {figures.statuses(period_start)}")
    figures.invoices(period_start)
    figures.ledger()
    return paid


def payouts_released(api: ApiServer, vendors: Vendors, period: str) -> int:
    """Green reconciliation, payouts unpaused as ops would, transfers made; returns how many."""
    step("Reconcile, then release contractor payouts")
    run_dag("closeout_reconcile", {"period": period})
    figures.recon()
    api.wait()
    os.environ["AIRFLOW_CONN_AIRFLOW_API"] = api.connection()
    api.set_paused(PAYOUTS, False)
    say(f"{PAYOUTS} unpaused through the API server at {api.url}, as ops would in the UI")
    run_dag(PAYOUTS)
    figures.payouts()
    transfers = vendors.stripe.count("transfer")
    say(f"{transfers} transfers in Stripe")
    return transfers


def discrepancy(vendors: Vendors, victim: story.OpenInvoice, period: str, mail: MailCatcher, hooks: WebhookCatcher,
                transfers: int) -> None:  # fmt: skip
    step("A discrepancy: an invoice changed in Stripe behind closeout's back")
    new_total = story.change_behind_our_back(vendors.stripe, victim)
    say(f"{victim.invoice_id} ({victim.stripe_invoice_id}): total {figures.major(victim.total_minor, victim.currency)}"
        f" -> {figures.major(new_total, victim.currency)} in Stripe; the customer then pays part of it")  # fmt: skip
    run_dag("closeout_stripe_events")
    run_dag("closeout_reconcile", {"period": period}, expect="failed")
    figures.recon()
    show_breach(mail, hooks)

    alerts_before = len(mail.mails)
    step(f"{PAYOUTS} triggered anyway")
    run_dag(PAYOUTS, expect="failed")
    refusal = figures.rows("SELECT reason FROM closeout.payout_runs WHERE step = 'gate' "
                           "ORDER BY payout_run_id DESC LIMIT 1")[0][0]  # fmt: skip
    say(f"the gate refused: {refusal}")
    say(f"transfers in Stripe: {vendors.stripe.count('transfer')} (before: {transfers}): nothing released")
    for captured in mail.mails[alerts_before:]:
        say(f"finance e-mailed again by the failed run's notifier: {captured.subject}")
    platform = [p for p in hooks.posts if p["path"] == "/platform"]
    say(f"platform team's webhook: {len(platform)} task-failure alert(s) (the breach, the refusal)")


def show_breach(mail: MailCatcher, hooks: WebhookCatcher) -> None:
    from closeout.gate.airflow_api import AirflowApiHook

    say(f"{PAYOUTS} is_paused, read back through the REST API: {AirflowApiHook().is_paused(PAYOUTS)}")
    for hold_id, reason, run_id in figures.rows(
        "SELECT hold_id, reason, recon_run_id FROM closeout.payout_holds WHERE released_at IS NULL ORDER BY hold_id"
    ):
        say(f"payout hold {hold_id} (recon run {run_id}): {reason}")
    finance_posts = [p for p in hooks.posts if p["path"] == "/finance"]
    say(f"finance alerts captured: {len(mail.mails)} e-mail(s), {len(finance_posts)} webhook post(s)")
    for post in finance_posts:
        facts = {k: post["json"].get(k) for k in ("check_name", "period", "hold_id", "dag_id", "dag_paused")}
        say(f"--- webhook JSON (finance's chat): {json.dumps(facts)}")
    for captured in mail.mails:
        say(f"--- e-mail to {', '.join(captured.recipients)}: {captured.subject}")
        for line in captured.text.rstrip().splitlines():
            say(f"  | {line}")


def finish(started: float, report: str) -> None:
    holds = figures.rows("SELECT hold_id FROM closeout.payout_holds WHERE released_at IS NULL ORDER BY hold_id")
    print(f"\nDemo finished in {time.perf_counter() - started:.0f} s.")
    print("To work with the demo's warehouse after it ends:")
    print(f"    {_warehouse_env()}")
    if holds:
        print("Release the payout hold once the difference is explained (then unpause closeout_payouts):")
        print(f"    CLOSEOUT_AIRFLOW_TOKEN=<your Airflow token> PYTHONPATH=plugins .venv/bin/python -m closeout.gate "
              f'release --hold-id {holds[0][0]} --why "explained: ..."  (docs/controls.md)')  # fmt: skip
    print("Query it:")
    print(f"    {_psql()} -h {ROOT / '.closeout' / 'pgdata'} -U postgres {runtime.DATABASE}")
    print("    select * from closeout.invoices; select * from closeout.recon_checks; "
          "select * from closeout.payout_holds;")
    print(f"The close report of the month, to open in a browser:\n    {report}")


def _warehouse_env() -> str:
    """Shell lines that start the embedded server again (it stops with the demo) and point the
    ``closeout_warehouse`` connection at the demo's database."""
    from closeout.warehouse.embedded import ENV_VAR

    return (f'eval "$(PYTHONPATH=plugins .venv/bin/python -m closeout.warehouse.embedded)"   # starts it, keeps it up'
            f"\n    export {ENV_VAR}='{os.environ[ENV_VAR]}'")  # fmt: skip


def _psql() -> str:
    try:
        from pgserver._commands import POSTGRES_BIN_PATH
    except ImportError:
        return "psql"
    return str(Path(POSTGRES_BIN_PATH) / "psql")


if __name__ == "__main__":
    main()
