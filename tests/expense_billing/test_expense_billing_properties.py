"""Property-based tests of expense billing: random sequences of expense creates, edits (amount, category, day,
client, currency), approvals, billable flips, deletions, restores, re-syncs, the tracker showing an issued expense
as billed (closeout's own write-back), grouping and receipt options, drafting, publication, voids and the lock of
October, mixed with time entries, on the real warehouse. After every step the drafting runs and:

* invariant 10: what every expense is billed, over all its rows on invoices not voided, equals what this test's
  own model says it should bill: its cost plus its client's markup rounded half-up in the minor unit, or 0 once
  deleted, not billable, not approved, or billed in the tracker by someone else;
* invariant 2 over every line, time and expense alike, and every invoice version's totals;
* a published invoice, or a draft of the locked month, never changes; a second drafting run writes nothing.
"""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import date
from decimal import Decimal as D

from billing_support import Entry
from closeout.billing.periods import lock_period
from closeout.warehouse.db import connect
from expense_billing_support import Expense, ExpenseBooks, billed_with_markup
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

MARKUP = {"c1": D("12.5"), "c2": D("0"), "c3": D("33.333")}
TOTALS = {
    "USD": [D("0.05"), D("0.07"), D("12.34"), D("999.99"), D("1.5")],
    "JPY": [D("1"), D("7"), D("999"), D("12345")],
    "KWD": [D("0.005"), D("1.333"), D("12.345")],
}
EXPONENT = {"USD": 2, "JPY": 0, "KWD": 3}
DAYS = [date(2026, 10, 3), date(2026, 10, 31), date(2026, 11, 2), date(2026, 11, 20), date(2026, 12, 1)]
OCTOBER_END = date(2026, 10, 31)
CATEGORIES = ["Travel", "Meals", None]
MOSTLY_TRUE = st.sampled_from([True, True, True, False])


def cost_minor(expense: Expense) -> int:
    return int(expense.total * (D(10) ** EXPONENT[expense.currency]))


class ExpenseBillingMachine(RuleBasedStateMachine):
    conn = None  # set by the test: one warehouse connection, one transaction per example

    expenses = Bundle("expenses")

    def __init__(self) -> None:
        super().__init__()
        self.books = ExpenseBooks(type(self).conn)
        self.state: dict[str, Expense] = {}
        self.deleted: set[str] = set()
        self.written_back: set[str] = set()  # expenses the tracker shows billed by closeout's own invoice
        self.frozen: dict[str, tuple] = {}
        self.october_locked = False
        self.next_id = 0
        self.options: dict[str, dict] = {c: {} for c in MARKUP}

    def teardown(self) -> None:
        type(self).conn.rollback()

    @initialize()
    def configure_clients(self) -> None:
        self._configure()
        self.books.put(Entry("t1", client="c1", hours=D("1.5"), rate=D("100")),
                       Entry("t2", client="c2", hours=D("2"), rate=D("95.5"), spent_date=date(2026, 11, 4)))

    # -- the tracker side --------------------------------------------------------------------------
    @rule(target=expenses, client=st.sampled_from(sorted(MARKUP)), currency=st.sampled_from(sorted(TOTALS)),
          data=st.data(), day=st.sampled_from(DAYS), category=st.sampled_from(CATEGORIES), approved=MOSTLY_TRUE,
          billable=MOSTLY_TRUE, billed_elsewhere=st.sampled_from([False, False, False, False, True]))  # fmt: skip
    def create(self, client, currency, data, day, category, approved, billable, billed_elsewhere) -> str:
        self.next_id += 1
        expense = Expense(str(self.next_id), client=client, currency=currency, spent_date=day, category=category,
                          total=data.draw(st.sampled_from(TOTALS[currency])), approved=approved, billable=billable,
                          billed_in_source=billed_elsewhere,
                          receipt_url=f"https://r.example/{self.next_id}.pdf")  # fmt: skip
        self._put(expense)
        return expense.source_id

    @rule(source_id=expenses, data=st.data())
    def edit_amount(self, source_id, data) -> None:
        """An edit of the amount, or a unit price change reaching closeout as a new total."""
        self._change(source_id, total=data.draw(st.sampled_from(TOTALS[self.state[source_id].currency])))

    @rule(source_id=expenses, approved=st.booleans(), billable=MOSTLY_TRUE)
    def approve(self, source_id, approved, billable) -> None:
        self._change(source_id, approved=approved, billable=billable)

    @rule(source_id=expenses, day=st.sampled_from(DAYS), category=st.sampled_from(CATEGORIES))
    def move_day_or_category(self, source_id, day, category) -> None:
        self._change(source_id, spent_date=day, category=category)

    @rule(source_id=expenses, client=st.sampled_from(sorted(MARKUP)), currency=st.sampled_from(sorted(TOTALS)),
          data=st.data())  # fmt: skip
    def move_client_or_currency(self, source_id, client, currency, data) -> None:
        self._change(source_id, client=client, currency=currency, total=data.draw(st.sampled_from(TOTALS[currency])))

    @rule(source_id=expenses)
    def resync_unchanged(self, source_id) -> None:
        if source_id not in self.deleted:
            assert self.books.put_expenses(self.state[source_id]) == 0, "re-reading an unchanged expense writes nothing"

    @rule(source_id=expenses)
    def delete(self, source_id) -> None:
        if source_id not in self.deleted:
            self.books.delete_expense(source_id)
            self.deleted.add(source_id)

    @rule(source_id=expenses)
    def restore(self, source_id) -> None:
        if source_id in self.deleted:
            self.deleted.discard(source_id)
            if source_id in self.written_back:  # a restored expense comes back unbilled in the tracker
                self.written_back.discard(source_id)
                self._put(replace(self.state[source_id], billed_in_source=False))
            else:
                self._put(self.state[source_id])

    @rule(data=st.data())
    def tracker_shows_issued_expense_billed(self, data) -> None:
        """closeout's write-back marks an expense of an issued invoice billed in the tracker: still closeout's."""
        issued = [r[0] for r in self.books.rows(
            """SELECT e.source_id FROM closeout.invoice_line_expenses e JOIN closeout.invoices i USING (invoice_id)
               WHERE i.status NOT IN ('draft', 'void') GROUP BY 1 HAVING sum(e.amount_minor) <> 0 ORDER BY 1""")
            if r[0] not in self.deleted and not self.state[r[0]].billed_in_source]  # fmt: skip
        if issued:
            source_id = data.draw(st.sampled_from(issued))
            self.written_back.add(source_id)
            self._change(source_id, billed_in_source=True)

    # -- the billing side --------------------------------------------------------------------------
    @rule()
    def draft_again(self) -> None:
        summary = self.books.draft()
        assert (summary.expense_rows_added, summary.expense_rows_closed, summary.expense_lines_changed) == (0, 0, 0)

    @rule(data=st.data())
    def publish(self, data) -> None:
        query = "SELECT invoice_id FROM closeout.invoices WHERE status = 'draft' AND line_count > 0 ORDER BY 1"
        drafts = [r[0] for r in self.books.rows(query)]
        if drafts:
            invoice_id = data.draw(st.sampled_from(drafts))
            if self.october_locked and self.books.invoices()[invoice_id][3] <= OCTOBER_END:
                return
            self.books.freeze(invoice_id)
            self.frozen[invoice_id] = self._snapshot(invoice_id)

    @rule(data=st.data())
    def void(self, data) -> None:
        frozen = sorted(i for i in self.frozen if self.books.invoices()[i][4] == "publishing")
        if frozen:
            invoice_id = data.draw(st.sampled_from(frozen))
            self.books.void(invoice_id)
            self.frozen[invoice_id] = self._snapshot(invoice_id)
            for source_id in sorted(self.written_back):  # the tracker's invoice is withdrawn with ours
                self.written_back.discard(source_id)
                self._change(source_id, billed_in_source=False)

    @rule()
    def lock_october(self) -> None:
        if self.october_locked:
            return
        lock_period(self.books.conn, "2026-10", locked_by="property-test")
        self.october_locked = True
        for invoice_id, row in self.books.invoices().items():
            if row[3] <= OCTOBER_END and invoice_id not in self.frozen:
                self.frozen[invoice_id] = self._snapshot(invoice_id)

    @rule(client=st.sampled_from(sorted(MARKUP)), grouping=st.sampled_from(["category", "expense"]),
          receipts=st.booleans())  # fmt: skip
    def reconfigure(self, client, grouping, receipts) -> None:
        self.options[client] = {"expense_grouping": grouping, "expense_receipt_links": receipts}
        self._configure()

    # -- invariants --------------------------------------------------------------------------------
    @invariant()
    def every_expense_is_billed_exactly_once(self) -> None:
        self.books.draft()
        self.books.check_expense_invariants(self._expected())
        assert self.books.billed("t1") == 15000 and self.books.billed("t2") == 19100, "time is billed as before"
        for invoice_id, snapshot in self.frozen.items():
            assert self._snapshot(invoice_id) == snapshot, f"published or locked invoice {invoice_id} changed"
        if self.october_locked:
            opened = [i for i, row in self.books.invoices().items() if row[3] <= OCTOBER_END and i not in self.frozen]
            assert not opened, f"drafts opened in the locked month: {opened}"

    # -- helpers -----------------------------------------------------------------------------------
    def _expected(self) -> dict[str, int]:
        expected = {}
        for source_id, e in self.state.items():
            by_someone_else = e.billed_in_source and source_id not in self.written_back
            if source_id in self.deleted or not e.billable or not e.approved or by_someone_else:
                expected[source_id] = 0
            else:
                expected[source_id] = billed_with_markup(cost_minor(e), MARKUP[e.client])
        return expected

    def _configure(self) -> None:
        self.books.configure({"clients": [
            {"client_key": f"harvest:{c}", "currency": "USD", "expense_markup_percent": str(m), **self.options[c]}
            for c, m in MARKUP.items()]})  # fmt: skip

    def _put(self, expense: Expense) -> None:
        self.state[expense.source_id] = expense
        self.books.put_expenses(expense)

    def _change(self, source_id: str, **changes) -> None:
        if source_id in self.deleted:
            return
        self._put(replace(self.state[source_id], **changes))

    def _snapshot(self, invoice_id: str) -> tuple:
        invoice = self.books.invoices()[invoice_id]
        lines = self.books.lines(invoice_id)
        rows = self.books.rows(
            """SELECT source_id, version, amount_minor FROM closeout.invoice_line_expenses
               WHERE invoice_id = %s ORDER BY 1, 2, 3""",
            (invoice_id,),
        )
        return invoice[5:], tuple(lines), tuple(rows)


def test_expense_billing_invariants_hold_under_random_histories(warehouse) -> None:
    with connect() as conn:
        ExpenseBillingMachine.conn = conn
        try:
            run = settings(max_examples=int(os.environ.get("CLOSEOUT_PROPERTY_EXAMPLES", "20")),
                           stateful_step_count=25, deadline=None,
                           suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])  # fmt: skip
            run_state_machine_as_test(ExpenseBillingMachine, settings=run)
        finally:
            ExpenseBillingMachine.conn = None
            conn.rollback()
