"""Collections: no customer holds a dead payment link (issue 13 item 7).

Real warehouse, closeout's own drafting and publishing, the Stripe sandbox through the real SDK. The sandbox
clock starts in the past (invoices are finalized then) and is moved forward to the present, so the links
Stripe issued expire on Stripe's documented schedule (30 days after the due date) by the time closeout looks.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest
import requests
from billing_support import Books, Entry
from closeout.payments import collections, tasks
from closeout.warehouse.db import connect
from conftest import STRIPE_WEBHOOK_SECRET
from payments_support import check_invariant_3, last_month

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gate"))
import gate_support

from sandbox.stripe import StripeSandbox

pytestmark = pytest.mark.integration

smtp, hook_receiver, finance_conns = gate_support.smtp, gate_support.hook_receiver, gate_support.finance_conns
DAY = 86_400
# finalized 90 days ago with 30-day terms: due 60 days ago, link dead since 30 days ago
DEAD_OFFSET_DAYS = 90


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[StripeSandbox]:
    """A Stripe sandbox whose clock starts DEAD_OFFSET_DAYS in the past (``catch_up`` moves it to now), wired to
    ``stripe_default`` with a 1 s timeout and no SDK retries, so a timeout reaches closeout's own retry."""
    offset = DEAD_OFFSET_DAYS * DAY
    box = StripeSandbox(webhook_secret=STRIPE_WEBHOOK_SECRET, seed=11, clock=lambda: time.time() - offset)
    box.start()
    monkeypatch.setenv("AIRFLOW_CONN_STRIPE_DEFAULT", json.dumps(
        {"conn_type": "http", "host": box.url, "password": box.secret_key,
         "extra": {"webhook_secret": STRIPE_WEBHOOK_SECRET, "max_network_retries": 0, "timeout": 1,
                   "concurrency": 2}}))  # fmt: skip
    yield box
    box.stop()


def catch_up(box: StripeSandbox) -> None:
    """Move the sandbox clock to the present (closeout's clock)."""
    box.advance_clock(max(0.0, time.time() - box.now()))


def publish(clients: dict[str, list[D]], fields: dict[str, dict] | None = None) -> dict:
    """Draft last month's entries and publish one invoice per client through closeout, each client configured
    with ``fields`` (collections_policy, payment_terms_days, ...). Returns client -> (invoice id, Stripe id,
    total)."""
    start = last_month()
    with connect() as conn:
        books = Books(conn)
        books.configure({
            "defaults": {"require_approval": False},
            "clients": [{"client_key": f"harvest:{c}", "currency": "USD", "grouping": "entry",
                         "name": f"Client {c.upper()}", "email": f"ap@{c}.example", **(fields or {}).get(c, {})}
                        for c in clients],
        })  # fmt: skip
        n = 1
        for client, hours_list in clients.items():
            for hours in hours_list:
                books.put(Entry(str(n), client=client, hours=hours, rate=D("100.00"), currency="USD",
                                spent_date=start + timedelta(days=n % 27)))  # fmt: skip
                n += 1
        books.draft()
        ids = [books.invoice_for(f"harvest:{c}", start, "USD") for c in clients]
        conn.commit()
    tasks.publish_drafts("publish")
    with connect() as conn:
        rows = conn.execute(
            """SELECT client_key, invoice_id, stripe_invoice_id, total_minor FROM closeout.invoices
               WHERE invoice_id = ANY(%s)""",
            (ids,),
        ).fetchall()
    found = {client.removeprefix("harvest:"): (iid, sid, total) for client, iid, sid, total in rows}
    assert all(sid for _, sid, _ in found.values()), found
    return found


def events_run() -> None:
    """What closeout_stripe_events does, task by task."""
    tasks.collect_events("events")
    tasks.apply_events("events")
    tasks.refresh_hosted_urls("events")


def sends(box: StripeSandbox, sid: str) -> int:
    return sum(1 for e in box.events("invoice.sent") if e["data"]["object"]["id"] == sid)


def dead(warehouse) -> dict[str, tuple]:
    rows = warehouse.rows(
        """SELECT invoice_id, client_name, amount_remaining_minor, action, action_state
           FROM closeout.dead_payment_links ORDER BY invoice_id"""
    )
    return {r[0]: r[1:] for r in rows}


def page(url: str) -> requests.Response:
    return requests.get(url, timeout=5)


# -- the sandbox serves links per their expiry --------------------------------------------------------------
def test_sandbox_link_expires_on_stripes_schedule_and_send_issues_a_fresh_one(sandbox) -> None:
    import stripe

    sdk = stripe.StripeClient(sandbox.secret_key, base_addresses={"api": sandbox.url}, max_network_retries=0)
    customer = sdk.v1.customers.create(params={"email": "ap@x.example"})
    draft = sdk.v1.invoices.create(params={"customer": customer.id, "collection_method": "send_invoice",
                                           "days_until_due": 30})  # fmt: skip
    sdk.v1.invoices.add_lines(draft.id, params={"lines": [{"amount": 5_000, "description": "Work"}]})
    opened = sdk.v1.invoices.finalize_invoice(draft.id)
    link = opened.hosted_invoice_url
    assert page(link).status_code == 200 and page(opened.invoice_pdf).status_code == 200

    sandbox.advance_clock(60 * DAY - 60)  # 30 days after the due date, less a minute: still alive
    assert page(link).status_code == 200
    sandbox.advance_clock(60)
    expired = page(link)
    assert expired.status_code == 410 and "expired" in expired.text and expired.history[0].status_code == 302
    assert "contact" in expired.text.lower()  # never sent: no recovery by e-mail
    assert page(opened.invoice_pdf).status_code == 410

    # an API read hands out a link valid for 10 more days at least (a new token); the old one stays dead
    read = sdk.v1.invoices.retrieve(draft.id).hosted_invoice_url
    assert read != link and page(read).status_code == 200 and page(link).status_code == 410
    sandbox.advance_clock(10 * DAY)
    assert page(read).status_code == 410

    sent = sdk.v1.invoices.send_invoice(draft.id, options={"idempotency_key": "send-1"})
    assert sent.hosted_invoice_url not in (link, read) and page(sent.hosted_invoice_url).status_code == 200
    assert sends(sandbox, draft.id) == 1
    assert "e-mail address" in page(link).text  # sent once: the expired page offers recovery by e-mail
    again = sdk.v1.invoices.send_invoice(draft.id, options={"idempotency_key": "send-1"})
    assert again.hosted_invoice_url == sent.hosted_invoice_url and sends(sandbox, draft.id) == 1  # replayed

    assert page(f"{sandbox.url}/i/{draft.id}/test_unknown").status_code == 404


# -- closeout -------------------------------------------------------------------------------------------
def test_link_about_to_expire_is_refreshed_for_closeout_and_no_customer_is_bothered(warehouse, sandbox) -> None:
    sandbox.advance_clock((DEAD_OFFSET_DAYS - 57) * DAY)  # finalized 57 days ago: 3 days of link left
    invoices = publish({"a": [D("2")]})
    iid, sid, _ = invoices["a"]
    catch_up(sandbox)
    (old,) = warehouse.rows("SELECT hosted_invoice_url FROM closeout.invoices WHERE invoice_id = %s", (iid,))[0]

    events_run()
    url, expires = warehouse.rows(
        "SELECT hosted_invoice_url, hosted_invoice_url_expires_at FROM closeout.invoices WHERE invoice_id = %s",
        (iid,),
    )[0]
    assert url != old and page(url).status_code == 200
    assert timedelta(days=9) < expires - datetime.now(UTC) <= timedelta(days=10)
    # the customer's link is the one they were given, still live for 3 days: nothing to do yet
    customer = warehouse.rows(
        "SELECT hosted_invoice_url, expires_at FROM closeout_data.customer_payment_links WHERE invoice_id = %s",
        (iid,),
    )
    assert customer[0][0] == old and timedelta(days=2) < customer[0][1] - datetime.now(UTC) < timedelta(days=4)
    assert tasks.collect_dead_links("collect")["decided_resend"] == 0
    assert dead(warehouse) == {} and sends(sandbox, sid) == 0


def test_dead_link_of_an_overdue_invoice_is_resent_once(warehouse, sandbox) -> None:
    invoices = publish({"a": [D("2")]})
    iid, sid, total = invoices["a"]
    catch_up(sandbox)
    events_run()
    (old,) = warehouse.rows("SELECT hosted_invoice_url FROM closeout_data.customer_payment_links")[0]
    assert page(old).status_code == 410
    assert dead(warehouse) == {iid: ("Client A", total, None, None)}

    counts = tasks.collect_dead_links("collect")
    assert (counts["decided_resend"], counts["sent"], counts["dead_links"]) == (1, 1, 0)
    assert sends(sandbox, sid) == 1
    action = warehouse.rows(
        """SELECT action, state, new_hosted_invoice_url, new_link_expires_at, idempotency_key, client_name
           FROM closeout.collection_actions WHERE invoice_id = %s""",
        (iid,),
    )
    assert len(action) == 1
    kind, state, new_url, new_expiry, key, name = action[0]
    assert (kind, state, name) == ("resend", "done", "Client A")
    assert new_url == sandbox.state.links.sent[sid][-1] and page(new_url).status_code == 200
    assert timedelta(days=9) < new_expiry - datetime.now(UTC) <= timedelta(days=10)
    assert key.startswith(f"closeout/invoice/{iid}/send/")
    assert warehouse.rows("SELECT hosted_invoice_url FROM closeout_data.customer_payment_links") == [(new_url,)]
    assert warehouse.scalar("SELECT hosted_invoice_url FROM closeout.invoices WHERE invoice_id = %s", (iid,)) == new_url
    outbox = "SELECT operation, status, resolved_by FROM closeout.stripe_outbox WHERE idempotency_key = %s"
    assert warehouse.rows(outbox, (key,)) == [("invoice.send", "done", "response")]

    events_run()
    again = tasks.collect_dead_links("again")
    assert (again["decided_resend"], again["sent"], again["replays"]) == (0, 0, 0) and sends(sandbox, sid) == 1
    assert dead(warehouse) == {}
    check_invariant_3(warehouse, sandbox)


def test_timeout_after_the_send_committed_replays_under_the_same_key(warehouse, sandbox) -> None:
    invoices = publish({"a": [D("2")], "b": [D("3")]})
    (ia, sa, _), (_ib, sb, _) = invoices["a"], invoices["b"]
    catch_up(sandbox)
    events_run()

    sandbox.inject("timeout_after_commit", path_prefix=f"/v1/invoices/{sa}/send", delay=3)
    with pytest.raises(collections.CollectionsIncomplete):
        tasks.collect_dead_links("first")
    assert sends(sandbox, sa) == 1 and sends(sandbox, sb) == 1  # Stripe sent it; closeout never heard back
    state = "SELECT state FROM closeout.collection_actions WHERE invoice_id = %s"
    assert warehouse.rows(state, (ia,)) == [("pending",)]
    assert len(dead(warehouse)) == 1  # as far as closeout knows, a's customer still holds the dead link

    counts = tasks.collect_dead_links("retry")
    assert (counts["replays"], counts["sent"]) == (1, 0) and sends(sandbox, sa) == 1
    new_url = warehouse.scalar("SELECT new_hosted_invoice_url FROM closeout.collection_actions WHERE invoice_id = %s",
                               (ia,))  # fmt: skip
    assert new_url == sandbox.state.links.sent[sa][-1] and page(new_url).status_code == 200
    assert dead(warehouse) == {}


def test_a_send_whose_key_stripe_forgot_is_looked_up_not_repeated(warehouse, sandbox) -> None:
    invoices = publish({"a": [D("2")]})
    iid, sid, _ = invoices["a"]
    catch_up(sandbox)
    events_run()
    sandbox.inject("timeout_after_commit", path_prefix=f"/v1/invoices/{sid}/send", delay=3)
    with pytest.raises(collections.CollectionsIncomplete):
        tasks.collect_dead_links("first")
    assert sends(sandbox, sid) == 1

    # a day later: the outbox row is older than Stripe keeps keys, and Stripe forgot it; closeout finds the
    # send among Stripe's invoice.sent events instead of e-mailing the customer twice
    with connect() as conn:
        conn.execute(
            """UPDATE closeout_data.stripe_outbox SET created_at = created_at - interval '25 hours'
               WHERE invoice_id = %s AND operation = 'invoice.send'""",
            (iid,),
        )
        conn.commit()
    sandbox.expire_idempotency_keys()
    counts = tasks.collect_dead_links("after_24h")
    assert (counts["found_sent"], counts["sent"]) == (1, 0) and sends(sandbox, sid) == 1
    outbox = "SELECT status, resolved_by FROM closeout.stripe_outbox WHERE operation = 'invoice.send'"
    assert warehouse.rows(outbox) == [("done", "metadata_lookup")]
    new_url = warehouse.scalar("SELECT new_hosted_invoice_url FROM closeout.collection_actions")
    assert new_url == sandbox.state.links.sent[sid][-1] and page(new_url).status_code == 200
    assert dead(warehouse) == {}


def test_notify_policy_tells_finance_once_and_never_e_mails_the_customer(
    warehouse, sandbox, smtp, hook_receiver, finance_conns
) -> None:
    invoices = publish({"a": [D("2")]}, {"a": {"collections_policy": "notify_finance"}})
    iid, sid, total = invoices["a"]
    catch_up(sandbox)
    events_run()
    counts = tasks.collect_dead_links("collect")
    assert (counts["decided_notify"], counts["notified"], counts["sent"]) == (1, 1, 0)
    tasks.collect_dead_links("again")
    events_run()
    tasks.collect_dead_links("and_again")

    assert sends(sandbox, sid) == 0
    [mail] = smtp.messages
    subject = mail.message["Subject"]
    assert "Client A" in subject and "expired payment link" in subject and "200.00 USD" in subject
    assert iid in mail.body and sid in mail.body and "collections_policy" in mail.body
    [hook] = hook_receiver.requests
    assert hook["json"]["invoice_id"] == iid and hook["json"]["amount_remaining_minor"] == total
    assert dead(warehouse) == {iid: ("Client A", total, "notify_finance", "done")}
    cause = warehouse.rows(
        """SELECT c.resolved_at IS NULL, count(d.*) FROM closeout.collection_actions a
           JOIN closeout.alert_causes c ON c.cause_id = a.alert_cause_id
           JOIN closeout.alerts_sent d ON d.cause_id = c.cause_id AND d.status = 'sent'
           GROUP BY c.resolved_at"""
    )
    assert cause == [(True, 2)]  # open, delivered on both finance channels

    # finance sends the invoice from the Stripe Dashboard: closeout learns it from the invoice.sent event, the
    # customer holds a live link again and the notice's cause resolves
    import stripe

    sdk = stripe.StripeClient(sandbox.secret_key, base_addresses={"api": sandbox.url}, max_network_retries=0)
    live = sdk.v1.invoices.send_invoice(sid).hosted_invoice_url
    events_run()
    assert tasks.collect_dead_links("sent_by_hand")["causes_resolved"] == 1
    assert dead(warehouse) == {} and len(smtp.messages) == 1
    assert warehouse.rows("SELECT hosted_invoice_url, delivered_via FROM closeout_data.customer_payment_links") == [
        (live, "send")
    ]
    assert warehouse.scalar("SELECT state FROM closeout.collection_actions") == "done"


def test_view_lists_exactly_the_dead_links_and_paid_or_void_invoices_are_never_touched(warehouse, sandbox) -> None:
    # e has 100-day terms: due in 10 days, its link lives until 120 days after finalization (30 days more)
    old = publish({"a": [D("2")], "b": [D("3")], "c": [D("4")], "d": [D("5")], "e": [D("6")]},
                  {"e": {"payment_terms_days": 100}})
    new = {"e": old.pop("e")}
    catch_up(sandbox)
    import stripe

    sdk = stripe.StripeClient(sandbox.secret_key, base_addresses={"api": sandbox.url}, max_network_retries=0)
    sandbox.pay_invoice(old["b"][1])
    sdk.v1.invoices.void_invoice(old["c"][1])
    sdk.v1.invoices.mark_uncollectible(old["d"][1])
    sandbox.pay_invoice(old["a"][1], 500)  # partly paid: the rest is still owed
    events_run()

    assert dead(warehouse) == {
        old["a"][0]: ("Client A", old["a"][2] - 500, None, None),
        old["d"][0]: ("Client D", old["d"][2], None, None),
    }
    counts = tasks.collect_dead_links("collect")
    assert (counts["decided_resend"], counts["sent"]) == (2, 2)
    assert {sid: sends(sandbox, sid) for sid in (old["a"][1], old["b"][1], old["c"][1], old["d"][1], new["e"][1])} == {
        old["a"][1]: 1, old["b"][1]: 0, old["c"][1]: 0, old["d"][1]: 1, new["e"][1]: 0}  # fmt: skip
    assert warehouse.scalar(
        "SELECT count(*) FROM closeout.collection_actions WHERE invoice_id = ANY(%s)",
        ([old["b"][0], old["c"][0], new["e"][0]],),
    ) == 0
    assert dead(warehouse) == {}


def test_outbox_takes_the_send_and_the_credit_note_operations(warehouse) -> None:
    definition = warehouse.scalar(
        """SELECT pg_get_constraintdef(oid) FROM pg_constraint
           WHERE conrelid = 'closeout_data.stripe_outbox'::regclass AND conname = 'stripe_outbox_operation_check'"""
    )
    for operation in ("customer.create", "invoice.create", "invoice.add_lines", "invoice.finalize",
                      "credit_note.create", "customer_balance.credit", "invoice.send"):  # fmt: skip
        assert f"'{operation}'" in definition, (operation, definition)


def test_events_dag_runs_the_collections(warehouse, sandbox, run_dag) -> None:
    invoices = publish({"a": [D("2")]})
    catch_up(sandbox)
    result = run_dag("closeout_stripe_events")
    assert result.state == "success", result
    assert result.task_states["collect_dead_links"] == "success"
    assert sends(sandbox, invoices["a"][1]) == 1
    assert warehouse.rows("SELECT action, state FROM closeout.collection_actions") == [("resend", "done")]
