"""
### closeout_stripe_events

Follows published invoices through Stripe's events: the only thing that makes an invoice paid.

1. **collect_events**: the Stripe events the webhook receiver stored (signature verified, at
   `/closeout/webhooks/stripe` on the API server), then a backfill from `/v1/events` from the last cursor,
   with an overlap, inside Stripe's 30-day window: a delivery that never came is found here.
2. **apply_events**: every new (or parked) event, once per event id, decided against the invoice's current
   state, never arrival order: status only moves forward (open -> uncollectible -> paid | void), the amount
   paid only grows, each payment, refund and dispute enters `closeout.invoice_payments` once. An event
   matching nothing closeout published is parked with the reason (`closeout.parked_events`) and retried.
3. **refresh_hosted_urls**: re-reads hosted invoice links of unpaid invoices close to expiry (first recording
   the link each new invoice's customer holds); then **collect_dead_links**: an invoice still owed whose
   customer's link expired is e-mailed again with a fresh link, or finance is told, per the client's
   `collections_policy` (docs/collections.md; `closeout.dead_payment_links`, `closeout.collection_actions`).
4. **sync_cash**: follows the money inside Stripe (docs/stripe-cash.md): the cash events already stored
   (charges, refunds, credit notes, disputes, payouts, invoice payments, balance), then the list endpoints from
   resumable cursors (balance transactions, payouts and the transactions each automatic payout carried,
   refunds, credit notes, disputes, charges, invoice payments, and every invoice Stripe lists), into
   `closeout.stripe_balance_transactions`, `closeout.stripe_payouts`, `closeout.refunds`, `closeout.credit_notes`,
   `closeout.disputes`, `closeout.stripe_charges`, `closeout.stripe_invoice_snapshots`.
5. **post_journals**: posts the balanced double-entry journals what was recorded calls for (finalisations,
   payments, refunds, disputes, voids, write-offs), once each, to the accounts of `include/ledger/accounts.yaml`;
   `closeout.ledger_lines`, runs in `closeout.ledger_runs`.

History: `closeout.invoice_status_history`; exceptions: `closeout.payment_exceptions`; runs:
`closeout.payment_runs`. Schedule: every 5 minutes (env `CLOSEOUT_EVENTS_SCHEDULE`, a cron; `none` for manual).
"""

from __future__ import annotations

from airflow.sdk import dag, get_current_context, task
from closeout.dag_defaults import START_DATE, default_args, schedule


@dag(
    dag_id="closeout_stripe_events",
    schedule=schedule("CLOSEOUT_EVENTS_SCHEDULE", "*/5 * * * *"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    tags=["closeout", "payments", "stripe"],
    doc_md=__doc__,
)
def closeout_stripe_events():
    @task
    def collect_events() -> dict:
        from closeout.payments import tasks

        return tasks.collect_events(get_current_context()["run_id"])

    @task
    def apply_events(collected: dict) -> dict:
        from closeout.payments import tasks

        return tasks.apply_events(get_current_context()["run_id"])

    @task
    def refresh_hosted_urls(applied: dict) -> dict:
        from closeout.payments import tasks

        return tasks.refresh_hosted_urls(get_current_context()["run_id"])

    @task
    def collect_dead_links(refreshed: dict) -> dict:
        from closeout.payments import tasks

        return tasks.collect_dead_links(get_current_context()["run_id"])

    @task
    def sync_cash(applied: dict) -> dict:
        from closeout.payments.cash import tasks

        return tasks.sync_cash(get_current_context()["run_id"])

    @task
    def post_journals(refreshed: dict, cash: dict) -> dict:
        from closeout.ledger import tasks

        return tasks.post_journals(get_current_context()["run_id"])

    applied = apply_events(collect_events())
    refreshed = refresh_hosted_urls(applied)
    collect_dead_links(refreshed)
    post_journals(refreshed, sync_cash(applied))


closeout_stripe_events()
