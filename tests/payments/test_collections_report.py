"""The close report lists the invoices whose customer holds a dead payment link (closeout.dead_payment_links),
by client name, with what is still owed, since when the link is dead and what closeout did; once a fresh link
is e-mailed the invoice leaves the list. Real warehouse, real publishing, the Stripe sandbox."""

from __future__ import annotations

import json
from decimal import Decimal as D

import pytest
from closeout.close import report
from closeout.payments import tasks
from closeout.warehouse.db import connect
from payments_support import last_month
from test_collections import catch_up, events_run, publish, sandbox  # noqa: F401 - the sandbox fixture

pytestmark = pytest.mark.integration


def _report() -> report.CloseReport:
    with connect() as conn:
        return report.build_report(conn, f"{last_month():%Y-%m}")


def test_report_lists_the_customers_holding_a_dead_link(warehouse, sandbox, monkeypatch) -> None:  # noqa: F811
    for conn_id in ("FINANCE_SMTP", "FINANCE_WEBHOOK"):  # no finance channel: a notice stays pending
        monkeypatch.delenv(f"AIRFLOW_CONN_{conn_id}", raising=False)
    invoices = publish({"a": [D("2")], "b": [D("3")]}, {"b": {"collections_policy": "notify_finance"}})
    catch_up(sandbox)
    sandbox.pay_invoice(invoices["a"][1], 5_000)  # a still owes 150.00 of 200.00
    events_run()

    listed = _report()
    assert [(d["client_name"], d["invoice_id"], d["amount_remaining_minor"], d["action"]) for d in listed.dead_links] \
        == [("Client A", invoices["a"][0], invoices["a"][2] - 5_000, None),
            ("Client B", invoices["b"][0], invoices["b"][2], None)]  # fmt: skip
    page = report.render_html(listed, {"csv": "close.csv", "json": "close.json"}).decode()
    section = page[page.index('id="dead-links"'):page.index('id="exceptions"')]
    assert "Client A" in section and "150.00 USD" in section and "Client B" in section and "300.00 USD" in section
    assert "not decided yet" in section
    document = json.loads(report.report_json(listed))
    assert {d["invoice_id"] for d in document["dead_payment_links"]} == {invoices["a"][0], invoices["b"][0]}

    # a is e-mailed a fresh link and leaves the list; b's policy is to tell finance (no finance channel is
    # configured here: the notice stays pending and is retried), so b stays listed with that decision
    with pytest.raises(Exception, match="collections actions failed transiently"):
        tasks.collect_dead_links("collect")
    after = _report()
    assert [(d["invoice_id"], d["action"], d["action_state"]) for d in after.dead_links] == [
        (invoices["b"][0], "notify_finance", "pending")
    ]
    section = report.render_html(after, {"csv": "c", "json": "j"}).decode()
    assert "finance told (pending)" in section and "Client A" not in section.split('id="dead-links"')[1].split(
        'id="exceptions"')[0]  # fmt: skip
