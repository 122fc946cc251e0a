"""Property-based tests: random sequences of creates, edits, rate changes, approvals, deletions,
restores, re-syncs, client moves, config changes, drafting, publication, voids and the month-end lock
of October, on the real warehouse. After every step the drafting runs and invariants 1 and 2
(DESIGN.md) are checked from the contract views, together with: a published invoice, or a draft of a
locked period, never changes; no draft is opened in a locked period; and a second drafting run with
nothing new writes nothing."""

from __future__ import annotations

import os
from datetime import date
from decimal import Decimal as D

from billing_support import Books, Entry
from closeout.billing.periods import lock_period
from closeout.warehouse.db import connect
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

CLIENTS = {"c1": "USD", "c2": "JPY", "c3": "KWD"}
HOURS = [D("0.25"), D("0.5"), D("1"), D("0.333333"), D("1.75"), D("2.5"), D("7.125"), D("13")]
RATES = [D("100"), D("95.5"), D("150.25"), D("12000"), D("45.123"), D("0.01")]
DAYS = [date(2026, 10, 3), date(2026, 10, 17), date(2026, 10, 31), date(2026, 11, 2), date(2026, 11, 20),
        date(2026, 12, 1)]  # fmt: skip
OCTOBER_END = date(2026, 10, 31)
USERS = ["u1", "u2"]
MOSTLY_TRUE = st.sampled_from([True, True, True, False])  # most time is billable and approved


class DraftingMachine(RuleBasedStateMachine):
    conn = None  # set by the test: one warehouse connection, one transaction per example

    entries = Bundle("entries")

    def __init__(self) -> None:
        super().__init__()
        self.books = Books(type(self).conn)
        self.state: dict[str, Entry] = {}
        self.deleted: set[str] = set()
        self.frozen: dict[str, tuple] = {}  # published invoices and drafts of the locked month
        self.october_locked = False
        self.next_id = 0

    def teardown(self) -> None:
        type(self).conn.rollback()

    @initialize()
    def configure_clients(self) -> None:
        self.books.configure(
            {"clients": [{"client_key": f"harvest:{c}", "currency": cur} for c, cur in CLIENTS.items()]}
        )

    # -- the tracker side --------------------------------------------------------------------------
    @rule(target=entries, client=st.sampled_from(sorted(CLIENTS)), user=st.sampled_from(USERS),
          day=st.sampled_from(DAYS), hours=st.sampled_from(HOURS), rate=st.sampled_from(RATES),
          approved=MOSTLY_TRUE, billable=MOSTLY_TRUE, task=st.sampled_from(["t1", "t2"]))  # fmt: skip
    def create(self, client, user, day, hours, rate, approved, billable, task) -> str:
        self.next_id += 1
        entry = Entry(str(self.next_id), client=client, user=user, spent_date=day, hours=hours, rate=rate,
                      approved=approved, billable=billable, task=task, currency=CLIENTS[client])  # fmt: skip
        self._put(entry)
        return entry.source_id

    @rule(source_id=entries, hours=st.sampled_from(HOURS))
    def edit_hours(self, source_id, hours) -> None:
        self._change(source_id, hours=hours)

    @rule(source_id=entries, rate=st.sampled_from(RATES))
    def change_rate(self, source_id, rate) -> None:
        self._change(source_id, rate=rate)

    @rule(source_id=entries, approved=st.booleans())
    def approve(self, source_id, approved) -> None:
        self._change(source_id, approved=approved)

    @rule(source_id=entries, day=st.sampled_from(DAYS))
    def move_day(self, source_id, day) -> None:
        self._change(source_id, spent_date=day)

    @rule(source_id=entries, client=st.sampled_from(sorted(CLIENTS)))
    def move_client(self, source_id, client) -> None:
        self._change(source_id, client=client, currency=CLIENTS[client])

    @rule(source_id=entries)
    def resync_unchanged(self, source_id) -> None:
        if source_id not in self.deleted:
            assert self.books.put(self.state[source_id]) == 0, "re-reading an unchanged entry writes nothing"

    @rule(source_id=entries)
    def delete(self, source_id) -> None:
        if source_id not in self.deleted:
            self.books.delete(source_id)
            self.deleted.add(source_id)

    @rule(source_id=entries)
    def restore(self, source_id) -> None:
        if source_id in self.deleted:
            self.deleted.discard(source_id)
            self._put(self.state[source_id])

    # -- the billing side --------------------------------------------------------------------------
    @rule()
    def draft_again(self) -> None:
        assert self.books.draft().invoices_changed == 0, "drafting twice in a row writes nothing the second time"

    @rule(data=st.data())
    def publish(self, data) -> None:
        query = "SELECT invoice_id FROM closeout.invoices WHERE status = 'draft' AND line_count > 0 ORDER BY 1"
        drafts = [row[0] for row in self.books.rows(query)]
        if drafts:
            invoice_id = data.draw(st.sampled_from(drafts))
            self.books.freeze(invoice_id)
            self.frozen[invoice_id] = self._snapshot(invoice_id)

    @rule(data=st.data())
    def void(self, data) -> None:
        frozen = sorted(i for i in self.frozen if self.books.invoices()[i][4] == "publishing")
        if frozen:
            invoice_id = data.draw(st.sampled_from(frozen))
            self.books.void(invoice_id)
            self.frozen[invoice_id] = self._snapshot(invoice_id)

    @rule()
    def lock_october(self) -> None:
        """The month-end close of October: from now on its drafts are as fixed as published invoices."""
        lock_period(self.books.conn, "2026-10", locked_by="property-test")
        self.october_locked = True
        for invoice_id, row in self.books.invoices().items():
            if row[3] <= OCTOBER_END and invoice_id not in self.frozen:
                self.frozen[invoice_id] = self._snapshot(invoice_id)

    @rule(client=st.sampled_from(sorted(CLIENTS)), grouping=st.sampled_from(["project_task", "user", "entry", "day"]),
          rounding=st.sampled_from(["tracker", "exact"]), require_approval=st.booleans())  # fmt: skip
    def reconfigure(self, client, grouping, rounding, require_approval) -> None:
        changed = {"grouping": grouping, "rounding": rounding, "require_approval": require_approval}
        clients = [
            {"client_key": f"harvest:{c}", "currency": cur, **(changed if c == client else {})}
            for c, cur in CLIENTS.items()
        ]
        self.books.configure({"clients": clients})

    # -- invariants --------------------------------------------------------------------------------
    @invariant()
    def books_balance_after_drafting(self) -> None:
        self.books.draft()
        self.books.check_invariants()
        for invoice_id, snapshot in self.frozen.items():
            assert self._snapshot(invoice_id) == snapshot, f"published or locked invoice {invoice_id} changed"
        if self.october_locked:
            opened = [i for i, row in self.books.invoices().items() if row[3] <= OCTOBER_END and i not in self.frozen]
            assert not opened, f"drafts opened in the locked month: {opened}"

    # -- helpers -----------------------------------------------------------------------------------
    def _put(self, entry: Entry) -> None:
        self.state[entry.source_id] = entry
        self.books.put(entry)

    def _change(self, source_id: str, **changes) -> None:
        if source_id in self.deleted:
            return
        entry = self.state[source_id]
        self._put(Entry(**{**entry.__dict__, **changes}))

    def _snapshot(self, invoice_id: str) -> tuple:
        invoice = self.books.invoices()[invoice_id]
        lines = self.books.lines(invoice_id)
        entries = self.books.rows(
            """SELECT source_id, version, amount_minor FROM closeout.invoice_line_entries
               WHERE invoice_id = %s ORDER BY 1, 2, 3""",
            (invoice_id,),
        )
        return invoice[5:], tuple(lines), tuple(entries)


def test_drafting_invariants_hold_under_random_histories(warehouse) -> None:
    with connect() as conn:
        DraftingMachine.conn = conn
        try:
            run = settings(max_examples=int(os.environ.get("CLOSEOUT_PROPERTY_EXAMPLES", "25")),
                           stateful_step_count=25, deadline=None,
                           suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])  # fmt: skip
            run_state_machine_as_test(DraftingMachine, settings=run)
        finally:
            DraftingMachine.conn = None
            conn.rollback()
