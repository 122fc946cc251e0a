"""Who hears about a task failure, and where its evidence is.

Every failure reaches the platform team (``platform_webhook``). Failures of the DAGs that move or book
money (publish, events and the journals posted by them, reconcile, payouts, the month-end close) also
reach finance (``finance_smtp`` and ``finance_webhook``), unless the exception says finance already has a
more specific alert (``markers.FinanceAlerted``: the payout gate's hold alert). Standard library only:
``closeout.dag_defaults`` imports it at parse time.
"""

from __future__ import annotations

PLATFORM_WEBHOOK = "platform_webhook"
FINANCE_SMTP = "finance_smtp"
FINANCE_WEBHOOK = "finance_webhook"
PLATFORM_CHANNELS = (PLATFORM_WEBHOOK,)
FINANCE_CHANNELS = (FINANCE_SMTP, FINANCE_WEBHOOK)

# The DAGs whose failures affect money: finance hears about them. A DAG added later that moves or books
# money joins this set (the month-end close is in it from the start).
MONEY_DAG_IDS = frozenset({
    "closeout_stripe_publish",
    "closeout_stripe_events",
    "closeout_reconcile",
    "closeout_payouts",
    "closeout_month_end_close",
})  # fmt: skip

# Where each DAG leaves the evidence of what it did and what it refused: named in its failure alerts.
EVIDENCE = {
    "closeout_sync_harvest": "closeout.sync_runs, closeout.quarantine",
    "closeout_sync_toggl": "closeout.sync_runs, closeout.quarantine",
    "closeout_sync_clockify": "closeout.sync_runs, closeout.quarantine",
    "closeout_migrate_history": "closeout.history_imports, closeout.history_unmapped",
    "closeout_invoice_drafts": "closeout.draft_runs, closeout.billing_exceptions",
    "closeout_stripe_publish": "closeout.payment_exceptions, closeout.stripe_publications, closeout.payment_runs",
    "closeout_stripe_events": "closeout.payment_exceptions, closeout.parked_events, closeout.ledger_runs",
    "closeout_reconcile": "closeout.recon_checks, closeout.payout_holds",
    "closeout_payouts": "closeout.payout_runs, closeout.payout_items, closeout.payout_holds",
    "closeout_month_end_close": "the close report, closeout.recon_checks, closeout.payout_holds",
    "closeout_pilot_compare": "closeout.pilot_comparisons, closeout.pilot_comparison_items, closeout.pilot_breaches",
}


def is_money_dag(dag_id: str) -> bool:
    return dag_id in MONEY_DAG_IDS


def channels_for(dag_id: str, *, finance_already_alerted: bool = False) -> tuple[str, ...]:
    """The channels a failure of this DAG goes to, platform first."""
    if is_money_dag(dag_id) and not finance_already_alerted:
        return PLATFORM_CHANNELS + FINANCE_CHANNELS
    return PLATFORM_CHANNELS
