"""Expenses in the books: each expense version booked once, on real Postgres through the real ledger posting.

Approved expenses are cost (billable: reimbursable_expenses, non-billable: project_costs) owed to the person
who paid (reimbursements_payable) or to the company card (expense_clearing), as the configured payer rules say;
an edit posts the difference, a deletion or un-approval reverses, a change the books do not care about posts
nothing; every journal balances per currency and a rerun posts nothing."""

from __future__ import annotations

import pytest
from closeout.ledger import expense_policy
from closeout.ledger import tasks as ledger_tasks
from expense_books_support import Expense, Tracker, balances, check_balanced, expense_journals, policy_file

pytestmark = pytest.mark.integration

PERSON = "harvest:11"


@pytest.fixture
def person_pays_travel(tmp_path, monkeypatch):
    """Travel is paid by the person, everything else by the company card."""
    return policy_file(tmp_path, monkeypatch, default_reimbursable=False,
                       rules=[{"source": "harvest", "category": "Travel", "reimbursable": True}])  # fmt: skip


def test_billable_and_non_billable_expenses_post_to_their_roles_once(warehouse, person_pays_travel) -> None:
    tracker = Tracker()
    travel = Expense(1, "120.50", category="Travel", billable=True)
    hotel = Expense(2, "80.00", category="Hotel", billable=False)
    meals = Expense(3, "15.25", category="Travel", billable=False, currency="EUR", client=8)
    pending = Expense(4, "999.00", approved=False)
    tracker.sync(travel, hotel, meals, pending)

    posted = ledger_tasks.post_journals("expenses-1")
    assert posted["by_kind"]["expense"] == 3
    assert expense_journals(warehouse, 1) == [
        (1, "approved", "USD", (("reimbursable_expenses", 12050, 0), ("reimbursements_payable", 0, 12050)))]
    assert expense_journals(warehouse, 2) == [
        (1, "approved", "USD", (("project_costs", 8000, 0), ("expense_clearing", 0, 8000)))]
    assert expense_journals(warehouse, 3) == [
        (1, "approved", "EUR", (("project_costs", 1525, 0), ("reimbursements_payable", 0, 1525)))]
    assert expense_journals(warehouse, 4) == []  # not approved: nothing is cost yet
    bookings = warehouse.rows("""SELECT source_id, version, change, paid_by, payer_rule, amount_minor
                                 FROM closeout.expense_bookings ORDER BY source_id""")  # fmt: skip
    assert bookings == [
        ("1", 1, "approved", "person", "rule 1: source=harvest category=Travel -> person", 12050),
        ("2", 1, "approved", "company", "default -> company", 8000),
        ("3", 1, "approved", "person", "rule 1: source=harvest category=Travel -> person", 1525),
        ("4", 1, "not_approved", "person", "rule 1: source=harvest category=Travel -> person", 0),
    ]
    accounts = warehouse.rows("""SELECT DISTINCT role, account FROM closeout.ledger_lines WHERE kind = 'expense'
                                 ORDER BY role""")  # fmt: skip
    assert accounts == [("expense_clearing", "2160"), ("project_costs", "5200"), ("reimbursable_expenses", "5100"),
                        ("reimbursements_payable", "2110")]  # fmt: skip
    check_balanced(warehouse)

    again = ledger_tasks.post_journals("expenses-2")
    assert again["journals"] == 0 and again["lines"] == 0  # posted once: a rerun posts nothing


def test_an_edit_posts_the_difference_and_a_deletion_reverses(warehouse, person_pays_travel) -> None:
    tracker = Tracker()
    travel = Expense(1, "100.00")
    tracker.sync(travel)
    ledger_tasks.post_journals("v1")

    travel.total_cost = "130.00"  # edited up
    tracker.sync(travel)
    ledger_tasks.post_journals("v2")
    travel.total_cost = "90.00"  # edited down
    tracker.sync(travel)
    travel.notes = "taxi to the client"  # a second change before the next posting: only the last is booked
    tracker.sync(travel)
    ledger_tasks.post_journals("v4")
    tracker.delete(travel)
    ledger_tasks.post_journals("v5")

    cost, owed = "reimbursable_expenses", "reimbursements_payable"
    assert expense_journals(warehouse, 1) == [
        (1, "approved", "USD", ((cost, 10000, 0), (owed, 0, 10000))),
        (2, "edited", "USD", ((cost, 3000, 0), (owed, 0, 3000))),
        (4, "edited", "USD", ((owed, 4000, 0), (cost, 0, 4000))),
        (5, "deleted", "USD", ((owed, 9000, 0), (cost, 0, 9000))),
    ]
    assert balances(warehouse, cost, owed) == {(cost, "USD"): 0, (owed, "USD"): 0}
    journals = warehouse.rows("SELECT count(*), count(DISTINCT journal_id) FROM closeout.ledger_journals "
                              "WHERE kind = 'expense'")  # fmt: skip
    assert journals == [(4, 4)]  # corrections are new journals; none was edited
    check_balanced(warehouse)


def test_approval_billability_payer_and_currency_changes(warehouse, tmp_path, monkeypatch) -> None:
    policy_file(tmp_path, monkeypatch, default_reimbursable=True)
    tracker = Tracker()
    lunch = Expense(7, "40.00", approved=False, billable=True, category="Meals")
    tracker.sync(lunch)
    ledger_tasks.post_journals("unapproved")
    assert expense_journals(warehouse, 7) == []

    lunch.approved = True
    tracker.sync(lunch)
    ledger_tasks.post_journals("approved")
    lunch.notes = "receipt attached"  # nothing the books care about: booked, no journal
    tracker.sync(lunch)
    assert ledger_tasks.post_journals("notes")["journals"] == 0
    lunch.billable = False  # no longer rebilled: moves from reimbursable_expenses to project_costs
    tracker.sync(lunch)
    ledger_tasks.post_journals("non-billable")
    # the company paid it after all (a rule for the person's card): reimbursements_payable -> expense_clearing
    policy_file(tmp_path, monkeypatch, default_reimbursable=True,
                rules=[{"user_key": "harvest:11", "category": "Meals", "reimbursable": False}])  # fmt: skip
    lunch.notes = "paid with the company card"
    tracker.sync(lunch)
    ledger_tasks.post_journals("company")
    lunch.currency, lunch.total_cost = "EUR", "37.00"  # the client now bills in EUR
    tracker.sync(lunch)
    ledger_tasks.post_journals("eur")
    lunch.approved = False  # reopened in the tracker
    tracker.sync(lunch)
    ledger_tasks.post_journals("reopened")

    assert expense_journals(warehouse, 7) == [
        (2, "approved", "USD", (("reimbursable_expenses", 4000, 0), ("reimbursements_payable", 0, 4000))),
        (4, "edited", "USD", (("project_costs", 4000, 0), ("reimbursable_expenses", 0, 4000))),
        (5, "edited", "USD", (("reimbursements_payable", 4000, 0), ("expense_clearing", 0, 4000))),
        (6, "edited", "EUR", (("project_costs", 3700, 0), ("expense_clearing", 0, 3700))),
        (6, "edited", "USD", (("expense_clearing", 4000, 0), ("project_costs", 0, 4000))),
        (7, "unapproved", "EUR", (("expense_clearing", 3700, 0), ("project_costs", 0, 3700))),
    ]
    changes = warehouse.rows("SELECT version, change FROM closeout.expense_bookings WHERE source_id = '7' "
                             "ORDER BY version")  # fmt: skip
    assert changes == [(1, "not_approved"), (2, "approved"), (3, "unchanged"), (4, "edited"), (5, "edited"),
                       (6, "edited"), (7, "unapproved")]  # fmt: skip
    assert set(balances(warehouse, "project_costs", "expense_clearing", "reimbursable_expenses",
                        "reimbursements_payable").values()) == {0}  # fmt: skip
    check_balanced(warehouse)


def test_bookings_are_append_only(warehouse, person_pays_travel) -> None:
    import psycopg
    from closeout.warehouse.db import connect

    Tracker().sync(Expense(1, "10.00"))
    ledger_tasks.post_journals("once")
    with connect() as conn, pytest.raises(psycopg.Error, match="expense_bookings"):
        conn.execute("UPDATE closeout_data.expense_bookings SET amount_minor = 1")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"expense_revenue_mode": "gross"}, "expense_revenue_mode 'gross' is not one of pass_through, revenue"),
        ({"rules": [{"category": "Travel"}]}, "rule 1: reimbursable must be true or false"),
        ({"rules": [{"reimbursable": True}]}, "rule 1: give source, category or user_key"),
        ({"rules": [{"source": "jira", "reimbursable": True}]}, "rule 1: source 'jira' is not one of"),
        ({"rules": [{"category": "Travel", "reimbursable": True, "colour": "red"}]}, "rule 1: unknown key"),
        ({"default_reimbursable": "yes"}, "default_reimbursable must be true or false"),
    ],
)
def test_a_bad_expense_books_file_is_refused_naming_the_rule_and_field(raw, message) -> None:
    with pytest.raises(expense_policy.ExpensePolicyError, match=message):
        expense_policy.parse(raw, origin="expenses.yaml")


def test_the_shipped_configuration_is_pass_through_and_company_paid() -> None:
    policy = expense_policy.read()
    assert (policy.revenue_mode, policy.default_reimbursable, policy.rules) == ("pass_through", False, ())
