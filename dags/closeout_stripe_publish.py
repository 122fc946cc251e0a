"""
### closeout_stripe_publish

Publishes the invoice drafts that policy lets go out (period over, something to bill, automatic or the
current version approved) to Stripe, exactly once.

* **Frozen first**: a draft is frozen before anything is sent; later changes to its entries become
  adjustments on the client's next draft.
* **Outbox**: every Stripe call (customer, draft invoice, lines, finalize) is recorded in
  `closeout.stripe_outbox` with a deterministic idempotency key *before* it is made; a retry replays it.
  A key older than Stripe's 24 h is looked up by metadata before anything is created again.
* **Totals must match**: Stripe's total is compared with ours to the minor unit before finalizing; a
  difference stops that invoice with a row in `closeout.payment_exceptions` (the others carry on).
* **Progress**: `closeout.stripe_publications`; runs and request counts: `closeout.payment_runs`.
* Only payment *events* make an invoice paid (`closeout_stripe_events`).
* **Corrections**: an edit or deletion that lowers what an issued invoice billed leaves the next draft
  (first, before anything is frozen, so it is never sent as a negative line) and becomes a Stripe credit
  note against that invoice (beside publishing); on a paid invoice: refund, customer balance or out of
  band, per the client's `credit_note_policy`. A draft whose period is over and that nets negative becomes
  a customer balance credit. Outbox and keys as above; `closeout.corrections`, `closeout.credit_note_lines`
  (docs/corrections.md).

Connection `stripe_default` (host = API base URL, password = secret key). Schedule: hourly
(env `CLOSEOUT_PUBLISH_SCHEDULE`, a cron; `none` for manual). Param `as_of` (YYYY-MM-DD): publish as if on
that day (default today).
"""

from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context, task
from closeout.dag_defaults import START_DATE, default_args, schedule


@dag(
    dag_id="closeout_stripe_publish",
    schedule=schedule("CLOSEOUT_PUBLISH_SCHEDULE", "0 * * * *"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    tags=["closeout", "payments", "stripe"],
    doc_md=__doc__,
    params={
        "as_of": Param(None, type=["null", "string"], format="date",
                       description="Publish as if on this day (YYYY-MM-DD); empty for today."),
    },
)  # fmt: skip
def closeout_stripe_publish():
    @task
    def publish_drafts() -> dict:
        from airflow.sdk.exceptions import AirflowFailException
        from closeout.params import date_param
        from closeout.payments import tasks
        from closeout.payments.publish import PublicationsStopped

        context = get_current_context()
        as_of = context["params"].get("as_of")
        try:
            return tasks.publish_drafts(context["run_id"], date_param("as_of", as_of))
        except PublicationsStopped as exc:  # a person must act; retrying would change nothing
            raise AirflowFailException(str(exc)) from exc

    @task
    def issue_corrections() -> dict:
        from airflow.sdk.exceptions import AirflowFailException
        from closeout.params import date_param
        from closeout.payments import credit_notes

        context = get_current_context()
        as_of = context["params"].get("as_of")
        try:
            return credit_notes.issue_corrections(context["run_id"], date_param("as_of", as_of))
        except credit_notes.CorrectionsStopped as exc:  # Stripe refused: a person must act
            raise AirflowFailException(str(exc)) from exc

    @task
    def take_corrections_off_drafts() -> dict:
        from closeout.params import date_param
        from closeout.payments import credit_notes

        context = get_current_context()
        as_of = context["params"].get("as_of")
        return credit_notes.take_corrections_off_drafts(context["run_id"], date_param("as_of", as_of))

    # corrections credit invoices issued earlier, not the drafts publishing now: issuing them does not wait on
    # publishing (nor stop when an invoice is stopped), and each step's failure fails the run
    take_corrections_off_drafts() >> [publish_drafts(), issue_corrections()]


closeout_stripe_publish()
