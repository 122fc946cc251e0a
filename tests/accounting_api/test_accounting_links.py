"""Customers without duplicates (issue 17 item 2) against both sandboxes and the real warehouse: a client matched by
e-mail links; two customers with the same name wait for finance and nothing is created; a worker SIGKILLed between
the create call and the link record creates no second customer on the rerun (the sandbox's own count); finance
resolves a review through the command with their Airflow identity and the decision is recorded; an edited client
name updates the linked customer in place."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from accounting_api_support import UNLIMITED, connect_quickbooks
from closeout.accounting.api.quickbooks import QuickBooksHook
from closeout.accounting.api.xero import XeroHook
from closeout.accounting.links import Client, Remote, customers_for, link_customers, match_client, near
from closeout.masking import forget_known_secrets
from closeout.warehouse.db import connect

from sandbox.quickbooks import QuickBooksSandbox
from sandbox.xero import XeroSandbox

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "controls"))
from controls_support import FINANCE, OUTSIDER, conn_json_as, login_in, people_api  # noqa: E402

people_api = people_api  # the fixture
XERO_NO_LIMITS = {"per_minute": None, "per_day": None, "max_concurrent": None, "app_per_minute": None}


@dataclass
class Books:
    """One accounting system under test: its sandbox, and how to plant customers someone else made there."""

    system: str
    sandbox: Any

    def customers(self) -> list[dict[str, Any]]:
        kind = "Customer" if self.system == "quickbooks" else "Contacts"
        return self.sandbox.objects(kind)

    def created(self) -> int:
        counts = self.sandbox.create_counts()
        return counts["Customer"] if self.system == "quickbooks" else counts["Contacts"]

    def plant(self, ref: str, name: str, email: str | None = None, *, also_known_as: str | None = None,
              archived: bool = False) -> str:  # fmt: skip
        """A customer an accountant or another integration made (not closeout's linking: its own outbox refs)."""
        if self.system == "quickbooks":
            body: dict[str, Any] = {"DisplayName": name, "CompanyName": also_known_as or name}
            if email:
                body["PrimaryEmailAddr"] = {"Address": email}
            if archived:
                body["Active"] = False
            return QuickBooksHook().create_customer(body, f"seed:{ref}").body["Customer"]["Id"]
        contact: dict[str, Any] = {"Name": name}
        if email:
            contact["EmailAddress"] = email
        if archived:
            contact["ContactStatus"] = "ARCHIVED"
        return XeroHook().create_contacts([contact], f"seed:{ref}").elements[0]["ContactID"]

    def name_of(self, remote_id: str) -> str:
        field, id_field = ("DisplayName", "Id") if self.system == "quickbooks" else ("Name", "ContactID")
        return next(c[field] for c in self.customers() if c[id_field] == remote_id)


def connect_xero(monkeypatch: pytest.MonkeyPatch, sandbox: XeroSandbox) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_XERO_DEFAULT", json.dumps({
        "conn_type": "http", "host": sandbox.base_url, "login": sandbox.client_id, "password": sandbox.client_secret,
        "extra": {"tenant_id": sandbox.tenant_id, "refresh_token": sandbox.first_refresh_token,
                  "token_url": sandbox.token_url}}))  # fmt: skip
    forget_known_secrets()


@pytest.fixture(params=["quickbooks", "xero"])
def books(request: pytest.FixtureRequest, warehouse, monkeypatch: pytest.MonkeyPatch) -> Iterator[Books]:
    if request.param == "quickbooks":
        sandbox: Any = QuickBooksSandbox(**UNLIMITED)
        sandbox.start()
        connect_quickbooks(monkeypatch, sandbox)
    else:
        sandbox = XeroSandbox(**XERO_NO_LIMITS)
        sandbox.start()
        connect_xero(monkeypatch, sandbox)
    yield Books(request.param, sandbox)
    sandbox.stop()


def add_client(key: str, name: str, email: str | None = None, currency: str = "USD") -> None:
    with connect() as conn:
        conn.execute(
            "INSERT INTO closeout_data.billing_clients (client_key, name, email, billing_period, currency, grouping, "
            "require_approval, payment_terms_days, rounding, publish_policy, config_hash) "
            "VALUES (%s, %s, %s, 'monthly', %s, 'project', false, 30, 'exact', 'auto', 'test') "
            "ON CONFLICT (client_key) DO UPDATE SET name = excluded.name, email = excluded.email",
            (key, name, email, currency),
        )


def run_links(books: Books):
    return link_customers(customers_for(books.system))


def links(warehouse) -> dict[str, tuple]:
    rows = warehouse.rows("SELECT closeout_ref, external_id, status, system FROM closeout.accounting_links "
                          "WHERE object_kind = 'customer'")  # fmt: skip
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def reviews(warehouse) -> list[tuple]:
    return warehouse.rows("SELECT review_id, closeout_ref, reason, state, jsonb_array_length(candidates) "
                          "FROM closeout.accounting_link_reviews ORDER BY review_id")  # fmt: skip


# -- matching rules (pure) -----------------------------------------------------------------------------------------
def test_matching_order_and_what_counts_as_near() -> None:
    acme = Client("acme", "Acme Ltd", "ap@acme.example", "USD")
    by_mail = Remote("7", "Acme Limited (old)", "AP@Acme.example ")
    assert match_client(acme, [by_mail, Remote("8", "Acme Ltd")], {}).matched_by == "email"  # e-mail before name
    assert match_client(acme, [Remote("8", "Acme Ltd")], {}).matched_by == "name"
    assert match_client(acme, [Remote("8", "Acme Ltd")], {"8": "other"}).reason == "ambiguous"  # never two clients
    assert match_client(acme, [Remote("9", "ACME  ltd.")], {}).reason == "near_match"
    assert match_client(acme, [Remote("9", "Acme Holdings")], {}).action == "create"
    configured = Client("acme", "Acme Ltd", None, "USD", configured_id="58")
    assert match_client(configured, [Remote("58", "Whatever"), Remote("8", "Acme Ltd")], {}).matched_by == "external_id"
    assert match_client(configured, [Remote("8", "Acme Ltd")], {}).reason == "external_id_not_found"
    assert near(" A.C.M.E, Ltd ") == near("acme ltd") and near("Acmé") != near("Acme")


# -- against the sandboxes -----------------------------------------------------------------------------------------
def test_a_client_matched_by_email_links_to_the_existing_customer(warehouse, books: Books) -> None:
    existing = books.plant("orbit", "Orbit Analytics GmbH", "billing@orbit.example")
    books.plant("other", "Someone Else", "else@example.com")
    add_client("orbit", "Orbit Analytics", "Billing@Orbit.example")  # a different name, the same mailbox
    before = books.created()
    run = run_links(books)
    assert run.linked == {"orbit": "email"} and not run.created and not run.reviews
    assert links(warehouse) == {"orbit": (existing, "linked", books.system)}
    assert books.created() == before
    assert books.name_of(existing) == "Orbit Analytics GmbH"  # matching does not rename the accountant's customer
    again = run_links(books)  # a rerun changes nothing
    assert not again.linked and not again.created and not again.updated and books.created() == before


def test_two_customers_with_the_same_name_go_to_review_and_nothing_is_created(warehouse, books: Books) -> None:
    if books.system == "quickbooks":  # DisplayName is unique; the legal name (CompanyName) is not
        books.plant("a", "Acme Ltd")
        books.plant("b", "Acme Ltd (Leeds)", also_known_as="Acme Ltd")
    else:  # Name is unique among active contacts; an archived one keeps it
        books.plant("a", "Acme Ltd", archived=True)
        books.plant("b", "Acme Ltd")
    books.plant("c", "Nova Labs")
    add_client("acme", "Acme Ltd")
    add_client("nova", "NOVA labs.")  # only a near match: also for finance
    add_client("zen", "Zen Studio", "hi@zen.example")  # matches nothing: created
    before = books.created()
    run = run_links(books)
    assert run.created == ["zen"] and sorted(run.reviews) == ["acme", "nova"]
    assert books.created() == before + 1
    assert [(r[1], r[2], r[3], r[4]) for r in reviews(warehouse)] == [
        ("acme", "ambiguous", "open", 2), ("nova", "near_match", "open", 1)]  # fmt: skip
    assert set(links(warehouse)) == {"zen"}
    again = run_links(books)  # waiting for finance: never created on a rerun either
    assert not again.created and not again.reviews and books.created() == before + 1 and len(reviews(warehouse)) == 2
    listing = subprocess.run([sys.executable, "-m", "closeout.accounting", "links", "review"], capture_output=True,
                             text=True, env=_env(), timeout=120)  # fmt: skip
    assert listing.returncode == 0, listing.stderr
    assert "client acme" in listing.stdout and "2 accounting link review(s) waiting" in listing.stdout


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT)]), **extra}


def kill_a_worker_between_the_create_and_the_link_record(books: Books) -> None:
    """Run ``links sync`` as a worker (a closeout_pipeline login, as the DAGs do) and SIGKILL it after the customer
    was created there and before its link is recorded: its link INSERT waits behind this test's lock."""
    with login_in("closeout_pipeline") as pipeline_login, connect() as blocker:
        blocker.execute("LOCK TABLE closeout_data.accounting_links IN SHARE MODE")
        worker = subprocess.Popen(
            [sys.executable, "-m", "closeout.accounting", "links", "sync", "--system", books.system],
            env=_env(AIRFLOW_CONN_CLOSEOUT_WAREHOUSE=conn_json_as(pipeline_login)),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while not (backend := _waiting_on_links(blocker)):
                assert worker.poll() is None, worker.communicate()
                assert time.monotonic() < deadline, "the worker never reached the link record"
                time.sleep(0.1)
            assert books.created() == 1  # the customer exists there; closeout has not recorded it
            worker.send_signal(signal.SIGKILL)
            worker.wait(30)
            # the dead worker's INSERT never ran: its session goes with it (Postgres would only notice the closed
            # socket after the lock wait, and an autocommit statement would then still commit)
            blocker.execute("SELECT pg_terminate_backend(%s)", (backend,))
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait(30)
    assert worker.returncode == -signal.SIGKILL


def test_a_worker_killed_between_the_create_and_the_link_record_creates_no_second_customer(
    warehouse, books: Books
) -> None:
    add_client("kite", "Kite Logistics", "ap@kite.example")
    kill_a_worker_between_the_create_and_the_link_record(books)
    assert links(warehouse) == {}
    run = run_links(books)
    assert run.linked == {"kite": "created"} and not run.reviews
    assert books.created() == 1  # the sandbox's own count: still one customer
    (customer,) = books.customers()
    remote_id = customer["Id"] if books.system == "quickbooks" else customer["ContactID"]
    assert links(warehouse) == {"kite": (remote_id, "linked", books.system)}
    assert not run_links(books).created and books.created() == 1


def test_a_client_renamed_after_a_killed_create_is_not_created_again(warehouse, books: Books) -> None:
    add_client("kite", "Kite Logistics")  # no e-mail to find it by
    kill_a_worker_between_the_create_and_the_link_record(books)
    add_client("kite", "Kite Freight")
    # QuickBooks: the outbox kept the id QuickBooks answered; Xero: the contact carries the client key (ContactNumber)
    run = run_links(books)
    assert run.linked == {"kite": "created"} and not run.created and not run.reviews and books.created() == 1
    (remote_id, status, _) = links(warehouse)["kite"]
    assert status == "linked"
    renamed = run_links(books)  # then the customer closeout created takes the client's new name, in place
    assert books.created() == 1 and books.name_of(remote_id) == "Kite Freight"
    assert renamed.updated == ["kite"]
    assert not run_links(books).updated


def _waiting_on_links(conn) -> int | None:
    """The backend pid of the session waiting to write a link, if one is."""
    row = conn.execute("SELECT l.pid FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                       "WHERE c.relname = 'accounting_links' AND NOT l.granted").fetchone()  # fmt: skip
    return row[0] if row else None


def test_finance_resolves_a_review_by_linking_or_creating_with_their_identity(
    warehouse, books: Books, people_api
) -> None:
    first = books.plant("a", "Acme Ltd", "ap@acme.example")
    books.plant("b", "ACME LTD.", "ap@acme.example")
    add_client("acme", "Acme Ltd", "ap@acme.example")  # two customers share the mailbox
    add_client("nova", "Nova Labs")
    books.plant("c", "Nova Labs.")  # a near match only
    run_links(books)
    (acme_review, nova_review) = [r[0] for r in reviews(warehouse)]
    with login_in("closeout_finance") as finance_login, login_in("closeout_pipeline") as pipeline_login:
        _resolve_as_finance(warehouse, books, people_api, first, acme_review, nova_review, finance_login,
                            pipeline_login)  # fmt: skip


def _resolve_as_finance(warehouse, books: Books, people_api, first: str, acme_review: int, nova_review: int,
                        finance_login: str, pipeline_login: str) -> None:  # fmt: skip
    env = _env(CLOSEOUT_AIRFLOW_URL=people_api.url, CLOSEOUT_FINANCE_APPROVERS=",".join(FINANCE),
               AIRFLOW_CONN_CLOSEOUT_WAREHOUSE=conn_json_as(finance_login))  # fmt: skip

    def resolve(user: str, review_id: int, *choice: str, login: str = finance_login) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "closeout.accounting", "links", "resolve", "--review-id",
                               str(review_id), *choice], capture_output=True, text=True, timeout=120,
                              env={**env, "CLOSEOUT_AIRFLOW_TOKEN": people_api.token(user),
                                   "AIRFLOW_CONN_CLOSEOUT_WAREHOUSE": conn_json_as(login)})  # fmt: skip

    on_pipeline = resolve(FINANCE[0], acme_review, "--remote-id", first, login=pipeline_login)
    assert on_pipeline.returncode == 2 and "permission denied" in on_pipeline.stderr  # the pipeline cannot decide
    outsider = resolve(OUTSIDER, acme_review, "--remote-id", first)
    assert outsider.returncode == 2 and "not in the finance group" in outsider.stderr
    assert links(warehouse) == {}
    linked = resolve(FINANCE[0], acme_review, "--remote-id", first, "--why", "the older record is theirs")
    assert linked.returncode == 0, linked.stderr
    twice = resolve(FINANCE[1], acme_review, "--create")
    assert twice.returncode == 2 and "already decided" in twice.stderr
    created = resolve(FINANCE[1], nova_review, "--create")
    assert created.returncode == 0, created.stderr
    assert warehouse.rows("SELECT kind, subject, requested_by, decided_by, outcome, reason FROM closeout.decisions "
                          "ORDER BY decision_id") == [
        ("accounting_link", f"{books.system}:customer:acme", "closeout_accounting_links", FINANCE[0], "approved",
         "the older record is theirs"),
        ("accounting_link", f"{books.system}:customer:nova", "closeout_accounting_links", FINANCE[1], "approved",
         "create a new customer")]
    assert links(warehouse) == {"acme": (first, "linked", books.system)}
    before = books.created()
    run = run_links(books)  # finance's 'create' is carried out once, through the outbox
    assert run.created == ["nova"] and books.created() == before + 1
    assert books.name_of(links(warehouse)["nova"][0]) == "Nova Labs"
    assert [(r[1], r[3]) for r in reviews(warehouse)] == [("acme", "done"), ("nova", "done")]
    assert books.name_of(first) == "Acme Ltd"  # the linked customer finance chose is adopted, not overwritten
    assert warehouse.scalar("SELECT remote_version IS NOT NULL FROM closeout.accounting_links "
                            "WHERE closeout_ref = 'acme'")  # fmt: skip
    assert not run_links(books).created and books.created() == before + 1


def test_an_edited_client_name_updates_the_linked_customer_in_place(warehouse, books: Books) -> None:
    add_client("pine", "Pine & Co", "ap@pine.example")
    run_links(books)
    remote_id = links(warehouse)["pine"][0]
    version = warehouse.scalar("SELECT remote_version FROM closeout.accounting_links WHERE closeout_ref = 'pine'")
    add_client("pine", "Pine & Co Holdings", "ap@pine.example")
    if books.system == "xero":
        books.sandbox.advance_clock(5)  # UpdatedDateUTC has second resolution
    run = run_links(books)
    assert run.updated == ["pine"] and not run.created
    assert books.created() == 1 and books.name_of(remote_id) == "Pine & Co Holdings"
    assert links(warehouse)["pine"] == (remote_id, "linked", books.system)
    assert version != warehouse.scalar(
        "SELECT remote_version FROM closeout.accounting_links WHERE closeout_ref = 'pine'")
    if books.system == "quickbooks":  # SyncToken moved on; an accountant's later edit is not overwritten blindly
        assert next(c for c in books.customers() if c["Id"] == remote_id)["SyncToken"] == "1"
    assert not run_links(books).updated  # nothing changed since: no call


# -- creates in batches (issue 17 item 7's budgets) ----------------------------------------------------------------
def _create_calls(books: Books) -> int:
    """Create calls the sandbox saw: Xero ``PUT /Contacts``, QuickBooks ``POST /batch``."""
    method, suffix = ("POST", "/batch") if books.system == "quickbooks" else ("PUT", "/Contacts")
    return sum(1 for m, target, _ in books.sandbox.stats()["log"]
               if m == method and target.split("?", 1)[0].endswith(suffix))  # fmt: skip


def test_new_clients_are_created_in_batches_and_one_refused_element_goes_to_review(warehouse, books: Books) -> None:
    # 120 clients that match nothing there; the last one carries the name of the seventh (case aside), which the
    # vendor refuses as a duplicate in the same batch call (matching cannot see it: neither exists there yet)
    for n in range(1, 120):
        add_client(f"batch-{n:03d}", f"Batch Client {n:03d}")
    add_client("batch-120", "BATCH CLIENT 007")
    run = run_links(books)
    per_call = 30 if books.system == "quickbooks" else 50
    assert _create_calls(books) == -(-120 // per_call) == run.create_batches  # 4 QuickBooks / 3 Xero calls
    assert run.reviews == ["batch-120"] and "batch-120" not in run.linked
    assert sorted(run.created) == [f"batch-{n:03d}" for n in range(1, 120)]
    assert books.created() == 119  # the sandbox's own count
    linked = links(warehouse)
    assert len(linked) == 119 and len({external_id for external_id, _, _ in linked.values()}) == 119
    (review,) = reviews(warehouse)
    assert review[1:4] == ("batch-120", "create_refused", "open")
    again = run_links(books)  # nothing left to create: no create call, no second customer
    assert not again.created and again.create_batches == 0
    assert _create_calls(books) == -(-120 // per_call) and books.created() == 119
