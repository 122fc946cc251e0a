"""Customers without duplicates: closeout clients linked to QuickBooks customers and Xero contacts (issue 17 item 2).

Why: a retried create, or a customer matched by name alone, is where duplicate customers are born, and every
invoice, payment and credit later pushed hangs off the customer. So each client is linked exactly once, in
``closeout_data.accounting_links`` (unique per system, company and client, and per remote id):

1. a client not yet linked is matched against the accounting system's own customers (read through the hook,
   paged, inactive/archived ones included): by a configured external id (``closeout_data.accounting_client_refs``;
   for Xero also ``ContactNumber`` = the client key closeout sets), then by e-mail, then by exact name;
2. exactly one match links it; several matches, a match already linked to another client, or a near match (equal
   only once case, whitespace and punctuation are ignored) open a review finance resolves
   (``python -m closeout.accounting links resolve``) and nothing is created;
3. clients that match nothing are created in batches (Xero ``PUT /Contacts`` of up to 50 with
   ``summarizeErrors=false``, QuickBooks ``POST /batch`` of up to 30), each through the hook's outbox under a
   requestid / Idempotency-Key derived from the batch's business ref, which IS the batch: the members' key, name,
   e-mail and currency as canonical JSON (``clients:[...]``), committed before the call. The links are recorded
   right after each answer; an element refused there (a duplicate name) opens a review for that client only. A
   worker killed in between leaves the outbox row: the next run finds the customers it created (by external id,
   e-mail or name) or, for members still unfound while the vendor keeps the key, re-sends that batch rebuilt byte
   for byte from its stored ref, which the vendor replays (the answer then names the ids);
4. a linked client whose name or e-mail changed is updated in place (QuickBooks: the current SyncToken, sparse;
   Xero: ``POST /Contacts`` by ContactID), never re-created.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from closeout.accounting.api.outbox import IdempotencyConflict
from closeout.paths import load_sql
from closeout.warehouse.db import connect

log = logging.getLogger(__name__)

SYSTEMS = ("quickbooks", "xero")
# pushed_sha256 of a recovered create whose client changed since: the next pass updates the customer in place
RENAME_PENDING = "rename-pending"
# business ref prefix of a create batch; the rest is the batch's members as canonical JSON (see batch_ref)
BATCH_PREFIX = "clients:"
# how long a vendor keeps an idempotency key (both document 24 h): an unanswered batch older than this is never
# re-sent (it would create again), its members are matched and batched afresh instead
KEY_LIFETIME_SECONDS = 24 * 3600.0


@dataclass(frozen=True)
class Client:
    """A closeout client as the accounting system should know it."""

    key: str
    name: str
    email: str | None
    currency: str | None
    configured_id: str | None = None

    @property
    def business_ref(self) -> str:
        return f"client:{self.key}"

    @property
    def fields_sha256(self) -> str:
        """What closeout keeps current in the accounting system; a change means an update in place."""
        text = json.dumps({"name": self.name, "email": self.email}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Remote:
    """A customer / contact as the accounting system holds it."""

    id: str
    name: str
    email: str | None = None
    version: str | None = None
    other_names: tuple[str, ...] = ()  # QuickBooks CompanyName
    numbers: tuple[str, ...] = ()  # Xero ContactNumber

    def summary(self, why: str) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "email": self.email, "why": why}


@dataclass(frozen=True)
class Verdict:
    """What to do with one unlinked client: 'link' (remote, matched_by), 'review' (reason, detail, candidates) or
    'create'."""

    action: str
    remote: Remote | None = None
    matched_by: str | None = None
    reason: str | None = None
    detail: str | None = None
    candidates: tuple[dict[str, Any], ...] = ()


def near(text: str | None) -> str:
    """The name as compared for a near match: case, whitespace and punctuation ignored (accents kept apart)."""
    folded = unicodedata.normalize("NFKC", text or "").casefold()
    return "".join(ch for ch in folded if ch.isalnum())


def _email(text: str | None) -> str:
    return (text or "").strip().casefold()


def _exact(text: str | None) -> str:
    return re.sub(r"\s+", " ", (text or "").strip())


def match_client(client: Client, remotes: Iterable[Remote], taken: dict[str, str]) -> Verdict:
    """Decide for one client not yet linked. ``taken``: remote id -> the closeout client already linked to it.

    Order: configured external id, e-mail, exact name. A single match that is free links; anything doubtful goes to
    finance; only a client that matches nothing at all, not even nearly, is created."""
    pool = list(remotes)

    def decide(hits: list[Remote], matched_by: str, what: str) -> Verdict | None:
        if not hits:
            return None
        free = [r for r in hits if r.id not in taken]
        if len(hits) == 1 and free:
            return Verdict("link", remote=hits[0], matched_by=matched_by)
        candidates = tuple(r.summary(what + (f" (already linked to {taken[r.id]})" if r.id in taken else ""))
                           for r in hits)  # fmt: skip
        detail = (f"{len(hits)} customers match {what}" if len(hits) > 1
                  else f"the customer matching {what} is already linked to client {taken[hits[0].id]}")  # fmt: skip
        return Verdict("review", reason="ambiguous", detail=detail, candidates=candidates)

    wanted_ids = {i for i in (client.configured_id,) if i}
    by_id = [r for r in pool if r.id in wanted_ids or wanted_ids & set(r.numbers) or client.key in r.numbers]
    if client.configured_id and not by_id:
        return Verdict("review", reason="external_id_not_found",
                       detail=f"the configured external id {client.configured_id} is not a customer there")  # fmt: skip
    verdict = decide(by_id, "external_id", f"external id {client.configured_id or client.key}")
    if verdict:
        return verdict
    if client.email:
        verdict = decide([r for r in pool if r.email and _email(r.email) == _email(client.email)], "email",
                         f"e-mail {client.email}")  # fmt: skip
        if verdict:
            return verdict
    exact = [r for r in pool if _exact(client.name) in {_exact(n) for n in (r.name, *r.other_names) if n}]
    nearly = [r for r in pool if r not in exact and near(client.name) and
              near(client.name) in {near(n) for n in (r.name, *r.other_names) if n}]  # fmt: skip
    if nearly:
        candidates = tuple(r.summary(f"exact name {client.name}") for r in exact) + tuple(
            r.summary(f"near name {client.name}") for r in nearly)
        return Verdict("review", reason="near_match", candidates=candidates,
                       detail=f"{len(nearly)} customer(s) nearly match the name {client.name!r} "
                              "(case, spaces or punctuation differ)")  # fmt: skip
    verdict = decide(exact, "name", f"name {client.name}")
    return verdict or Verdict("create")


class CreateRefused(RuntimeError):
    """The accounting system refused to create the customer for a reason a person must look at (duplicate name)."""


def batch_member(client: Client, review_id: int | None = None) -> dict[str, Any]:
    """What a create batch carries for one client; a finance 'create' decision (``review_id``) makes it a new
    member, so a create refused before is not replayed by the vendor under the old key."""
    member: dict[str, Any] = {"key": client.key, "name": client.name, "email": client.email,
                              "currency": client.currency.upper() if client.currency else None}  # fmt: skip
    if review_id is not None:
        member["review"] = review_id
    return member


def batch_ref(members: list[dict[str, Any]]) -> str:
    """The outbox business ref of a create batch: the members themselves, so the body (a pure function of them)
    can be rebuilt byte for byte for a retry, and the requestid / Idempotency-Key derived from it is the same."""
    return BATCH_PREFIX + json.dumps(members, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def batch_members(business_ref: str) -> list[dict[str, Any]]:
    return list(json.loads(business_ref[len(BATCH_PREFIX) :]))


class Customers(Protocol):
    """One accounting system's customers, through its hook."""

    system: str
    company_id: str
    create_operation: str
    batch_size: int

    def list(self) -> list[Remote]: ...
    def read(self, remote_id: str) -> Remote | None: ...
    def create_batch(self, members: list[dict[str, Any]], business_ref: str) -> dict[str, Remote | str]: ...
    def update(self, remote_id: str, client: Client) -> Remote: ...


class QuickBooksCustomers:
    """Customers in one QuickBooks company (``QuickBooksHook``)."""

    system = "quickbooks"
    create_operation = "batch"

    def __init__(self, hook: Any) -> None:
        from closeout.accounting.api.quickbooks import MAX_BATCH_ITEMS

        self.hook = hook
        self.company_id = hook.realm_id
        self.batch_size = MAX_BATCH_ITEMS

    @staticmethod
    def _remote(obj: dict[str, Any]) -> Remote:
        return Remote(id=str(obj["Id"]), name=str(obj.get("DisplayName") or ""),
                      email=(obj.get("PrimaryEmailAddr") or {}).get("Address"), version=str(obj.get("SyncToken")),
                      other_names=tuple(n for n in (obj.get("CompanyName"),) if n))  # fmt: skip

    def list(self) -> list[Remote]:
        # QuickBooks lists only active customers unless asked; an inactive one still holds its name and history
        return [self._remote(o) for o in self.hook.query_customers("Active IN (true, false)")]

    def read(self, remote_id: str) -> Remote | None:
        from closeout.accounting.api.quickbooks import QuickBooksError

        try:
            return self._remote(self.hook.get_customer(remote_id))
        except QuickBooksError as exc:
            if exc.status in (400, 404) and not exc.retryable:
                return None
            raise

    @staticmethod
    def _fields(name: str, email: str | None) -> dict[str, Any]:
        fields: dict[str, Any] = {"DisplayName": name, "CompanyName": name}
        if email:
            fields["PrimaryEmailAddr"] = {"Address": email}
        return fields

    def create_batch(self, members: list[dict[str, Any]], business_ref: str) -> dict[str, Remote | str]:
        """One ``POST /batch`` creating up to 30 customers; per member its customer or why it was refused (6240:
        the name is taken). The call fails only as a whole (raised)."""
        customers = []
        for member in members:
            customer = self._fields(member["name"], member["email"])
            if member["currency"]:
                customer["CurrencyRef"] = {"value": member["currency"]}
            customers.append((str(member["key"]), customer))
        return create_customers_batch(self.hook, customers, business_ref, "customer")

    def update(self, remote_id: str, client: Client) -> Remote:
        current = self.hook.get_customer(remote_id)  # its SyncToken now: an update in place, never a second one
        token = str(current["SyncToken"])
        payload = {"Id": remote_id, "SyncToken": token, "sparse": True, **self._fields(client.name, client.email)}
        ref = f"{client.business_ref}:update:v{token}:{client.fields_sha256[:16]}"
        return self._remote(self.hook.update_customer(payload, ref).body["Customer"])


class XeroContacts:
    """Contacts in one Xero organisation (``XeroHook``)."""

    system = "xero"
    create_operation = "contacts.create"

    def __init__(self, hook: Any) -> None:
        self.hook = hook
        self.company_id = hook.tenant_id
        self.batch_size = hook.settings.batch_size

    @staticmethod
    def _remote(obj: dict[str, Any]) -> Remote:
        return Remote(id=str(obj["ContactID"]), name=str(obj.get("Name") or ""), email=obj.get("EmailAddress"),
                      version=str(obj.get("UpdatedDateUTC") or "") or None,
                      numbers=tuple(n for n in (obj.get("ContactNumber"),) if n))  # fmt: skip

    def list(self) -> list[Remote]:
        from closeout.accounting.api.xero import PAGE_SIZE

        found: list[Remote] = []
        page = 1
        while True:  # archived contacts too: they keep their name and history
            rows = self.hook.get("Contacts", {"page": page, "includeArchived": "true"}).get("Contacts") or []
            found += [self._remote(r) for r in rows]
            if len(rows) < PAGE_SIZE:
                return found
            page += 1

    def read(self, remote_id: str) -> Remote | None:
        from closeout.accounting.api.xero import XeroError

        try:
            rows = self.hook.get(f"Contacts/{remote_id}").get("Contacts") or []
        except XeroError as exc:
            if exc.status in (400, 404):
                return None
            raise
        return self._remote(rows[0]) if rows else None

    def _answer(self, elements: list[dict[str, Any]]) -> Remote:
        element = elements[0] if elements else {}
        if element.get("StatusAttributeString") == "ERROR" or not element.get("ContactID"):
            messages = "; ".join(str(e.get("Message")) for e in element.get("ValidationErrors") or [])
            raise CreateRefused(f"Xero refused the contact: {messages or 'no answer element'}")
        return self._remote(element)

    def create_batch(self, members: list[dict[str, Any]], business_ref: str) -> dict[str, Remote | str]:
        """One ``PUT /Contacts`` of up to 50 (``summarizeErrors=false``): per member its contact or Xero's
        ValidationErrors for that element; the others are created regardless."""
        contacts = []
        for member in members:
            contact: dict[str, Any] = {"Name": member["name"], "ContactNumber": member["key"]}
            if member["email"]:
                contact["EmailAddress"] = member["email"]
            if member["currency"]:
                contact["DefaultCurrency"] = member["currency"]
            contacts.append(contact)
        elements = self.hook.create_contacts(contacts, business_ref).elements
        result: dict[str, Remote | str] = {}
        for n, member in enumerate(members):
            try:
                result[member["key"]] = self._answer(elements[n : n + 1])
            except CreateRefused as exc:
                result[member["key"]] = str(exc)
        return result

    def update(self, remote_id: str, client: Client) -> Remote:
        contact = {"ContactID": remote_id, "Name": client.name, "EmailAddress": client.email or ""}
        ref = f"{client.business_ref}:update:{client.fields_sha256[:16]}"
        return self._answer(self.hook.write("contacts.save", ref, "POST", "Contacts", [contact]).elements)


@dataclass
class LinkRun:
    """What one run did, for the task log and the tests."""

    system: str
    company_id: str
    linked: dict[str, str] = field(default_factory=dict)  # client -> how (external_id, email, name, created)
    created: list[str] = field(default_factory=list)
    reviews: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    create_batches: int = 0  # create calls made (each up to 50 Xero contacts / 30 QuickBooks customers)


def customers_for(system: str, conn_id: str | None = None, *,
                  warehouse_conn_id: str = "closeout_warehouse") -> Customers:  # fmt: skip
    """The customers adapter of ``system`` over its hook (connection ``<system>_default`` unless given)."""
    if system == "quickbooks":
        from closeout.accounting.api.quickbooks import QuickBooksHook

        return QuickBooksCustomers(QuickBooksHook(conn_id or "quickbooks_default", warehouse_conn_id=warehouse_conn_id))
    if system == "xero":
        from closeout.accounting.api.xero import XeroHook

        return XeroContacts(XeroHook(conn_id or "xero_default", warehouse_conn_id=warehouse_conn_id))
    raise ValueError(f"unknown accounting system {system!r}; expected one of {', '.join(SYSTEMS)}")


def link_customers(customers: Customers, *, warehouse_conn_id: str = "closeout_warehouse") -> LinkRun:
    """Link every closeout client to exactly one customer there, creating only what matches nothing."""
    run = LinkRun(customers.system, customers.company_id)
    scope = {"system": customers.system, "company_id": customers.company_id}
    with connect(warehouse_conn_id, autocommit=True) as conn:
        rows = conn.execute(load_sql("accounting_api/links_clients.sql"),
                            {**scope, "create_operation": customers.create_operation}).fetchall()  # fmt: skip
        taken = dict(conn.execute(load_sql("accounting_api/links_taken.sql"), scope).fetchall())
        clients = [(Client(r[0], r[1], r[2], r[3], r[9]), r) for r in rows]
        unlinked = [(c, r) for c, r in clients if r[4] is None and r[8] != "open"]
        remotes = customers.list() if any(r[8] != "create" for _, r in unlinked) else []
        matched: list[dict[str, Any]] = []
        reviews: list[dict[str, Any]] = []
        to_create: dict[str, tuple[Client, int | None]] = {}  # client key -> (client, finance's review id)
        resend: dict[str, list[dict[str, Any]]] = {}  # business ref of a batch to re-send as it was -> members
        for client, row in unlinked:
            review_id, review_state, create_sent, created_id = row[7], row[8], row[10], row[11]
            sent_ref, sent_age = row[12], row[13]
            recovered = _recover_created(customers, remotes, created_id, taken)
            if recovered is not None:  # closeout's own create, answered but never recorded: link that one
                verdict = Verdict("link", remote=recovered, matched_by="created")
            elif review_state == "create":
                verdict = Verdict("create")
            else:
                verdict = match_client(client, remotes, taken)
            if verdict.action == "link" and verdict.remote is not None:
                remote = verdict.remote
                pushed = client.fields_sha256
                if create_sent:  # a create this client already sent (a worker killed before recording it) found again
                    how = "created"
                    if remote.name != client.name or _email(remote.email) != _email(client.email):
                        pushed = RENAME_PENDING  # closeout made it: it takes the client's current fields in place
                else:
                    how = str(verdict.matched_by)
                matched.append(_link_row(client, remote, how, review_id, pushed=pushed))
                taken[verdict.remote.id] = client.key
                run.linked[client.key] = how
            elif verdict.action == "review":
                reviews.append({"closeout_ref": client.key, "reason": verdict.reason, "detail": verdict.detail,
                                "candidates": list(verdict.candidates)})  # fmt: skip
            else:
                to_create[client.key] = (client, review_id if review_state == "create" else None)
                if sent_ref and review_state != "create" and float(sent_age) <= KEY_LIFETIME_SECONDS:
                    # its batch went out but its answer was never recorded: the same body again, which the vendor
                    # replays with the id it created (a renamed client is found this way, not created twice)
                    resend[sent_ref] = batch_members(sent_ref)
        if matched:  # before any create, so a kill during the creates loses no match
            _record(conn, scope, matched)
        for business_ref, members in resend.items():
            if any(m["key"] in to_create and to_create[m["key"]][1] is None for m in members):
                _create_batch(conn, customers, scope, business_ref, members, to_create, reviews, run, resent=True)
        fresh = [batch_member(client, review_id) for client, review_id in to_create.values()]
        for start in range(0, len(fresh), customers.batch_size):
            members = fresh[start : start + customers.batch_size]
            _create_batch(conn, customers, scope, batch_ref(members), members, to_create, reviews, run)
        if reviews:
            opened = conn.execute(load_sql("accounting_api/reviews_open.sql"),
                                  {**scope, "reviews": json.dumps(reviews)}).fetchall()  # fmt: skip
            run.reviews = [ref for _, ref in opened]
        _update_in_place(conn, customers, scope, [(c, r) for c, r in clients if r[4] is not None], run)
    log.info("%s %s customer links: %d linked (%d created), %d to review, %d updated, %d failed", run.system,
             run.company_id, len(run.linked), len(run.created), len(run.reviews), len(run.updated),
             len(run.failed))  # fmt: skip
    return run


def _create_batch(conn: Any, customers: Customers, scope: dict[str, str], business_ref: str,
                  members: list[dict[str, Any]], to_create: dict[str, tuple[Client, int | None]],
                  reviews: list[dict[str, Any]], run: LinkRun, *, resent: bool = False) -> None:  # fmt: skip
    """Send one create batch (recorded in the outbox before the call, by the hook) and record its links at once;
    members refused there go to review, the others are linked. Only members still to create are touched: a
    re-sent batch's other members were linked or reviewed before."""
    run.create_batches += 1
    try:
        answers = customers.create_batch(members, business_ref)
    except IdempotencyConflict as exc:  # cannot happen for a ref that is its body; never create blind
        answers = {m["key"]: str(exc) for m in members}
    links = []
    for member in members:
        # a member finance since told to create anew is not answered by its old (refused) element
        if member["key"] not in to_create or (resent and to_create[member["key"]][1] is not None):
            continue
        client, review_id = to_create.pop(member["key"])
        answer = answers.get(member["key"], "no answer for this element")
        if isinstance(answer, str):
            reviews.append({"closeout_ref": client.key, "reason": "create_refused", "detail": answer[:2000],
                            "candidates": []})  # fmt: skip
            continue
        same = answer.name == client.name and _email(answer.email) == _email(client.email)
        links.append(_link_row(client, answer, "created", review_id,
                               pushed=client.fields_sha256 if same else RENAME_PENDING))  # fmt: skip
        run.linked[client.key] = "created"
        if not resent:
            run.created.append(client.key)
    # recorded right after the call; a worker killed before this line is found again by the next run
    if links:
        _record(conn, scope, links)


def _recover_created(customers: Customers, remotes: list[Remote], created_id: str | None,
                     taken: dict[str, str]) -> Remote | None:  # fmt: skip
    """The customer closeout's own earlier create made (its id from the outbox), if it still exists and is free."""
    if not created_id or created_id in taken:
        return None
    listed = next((r for r in remotes if r.id == created_id), None)
    return listed or customers.read(created_id)


def _link_row(client: Client, remote: Remote, how: str, review_id: int | None, *, pushed: str | None) -> dict[str, Any]:
    return {"closeout_ref": client.key, "external_id": remote.id, "remote_version": remote.version,
            "matched_by": how, "pushed_sha256": pushed, "review_id": review_id}  # fmt: skip


def _record(conn: Any, scope: dict[str, str], links: list[dict[str, Any]]) -> None:
    conn.execute(load_sql("accounting_api/links_record.sql"), {**scope, "links": json.dumps(links)})


def _update_in_place(conn: Any, customers: Customers, scope: dict[str, str], linked: list[tuple[Client, tuple]],
                     run: LinkRun) -> None:  # fmt: skip
    """Linked clients whose name or e-mail changed are updated there; links finance made are adopted (their version
    read, closeout's fields taken as current) without overwriting the customer finance chose."""
    changes: list[dict[str, Any]] = []
    for client, row in linked:
        external_id, pushed = row[4], row[6]
        if pushed == client.fields_sha256:
            continue
        try:
            if pushed is None:
                remote = customers.read(external_id)
                if remote is None:
                    changes.append({"closeout_ref": client.key, "status": "update_failed",
                                    "detail": f"customer {external_id} does not exist there"})  # fmt: skip
                    run.failed[client.key] = "missing"
                    continue
                changes.append({"closeout_ref": client.key, "remote_version": remote.version,
                                "pushed_sha256": client.fields_sha256, "status": "linked", "detail": None})  # fmt: skip
                continue
            remote = customers.update(external_id, client)
        except CreateRefused as exc:
            changes.append({"closeout_ref": client.key, "status": "update_failed", "detail": str(exc)[:2000]})
            run.failed[client.key] = str(exc)
            continue
        except Exception as exc:
            if getattr(exc, "retryable", True):
                raise
            changes.append({"closeout_ref": client.key, "status": "update_failed", "detail": str(exc)[:2000]})
            run.failed[client.key] = str(exc)
            continue
        changes.append({"closeout_ref": client.key, "remote_version": remote.version,
                        "pushed_sha256": client.fields_sha256, "status": "linked", "detail": None})  # fmt: skip
        run.updated.append(client.key)
    if changes:
        conn.execute(load_sql("accounting_api/links_synced.sql"), {**scope, "links": json.dumps(changes)})


# -- projects as QuickBooks sub-customers ------------------------------------------------------------------------------
# QuickBooks keeps projects as sub-customers: a Customer with ``Job: true`` and ``ParentRef`` = its customer
# (Intuit's Customer reference; /work/shared/reference/accounting-apis.md). Where the QuickBooks connection's extra
# says ``"projects_as_sub_customers": true``, every project billed for a linked client gets one, linked in
# ``closeout_data.accounting_links`` as object_kind 'project' (ref ``<client_key>/<project_key>``), matched before
# created (an existing sub-customer of that client named as the project), reviewed when ambiguous or near, created
# in batches of 30 through the outbox, never twice. A worker killed after a create and before its link was recorded
# leaves the sub-customer there: the next run's listing finds it under its parent by its name and links it.
# Xero has no sub-customers (contacts are flat): there, invoices of a project go to the client's contact.
PROJECTS_SETTING = "projects_as_sub_customers"
PROJECT_BATCH_PREFIX = "projects:"
DISPLAY_NAME_MAX = 500  # QuickBooks' DisplayName limit


def projects_enabled(conn_id: str | None) -> bool:
    """Whether the QuickBooks connection asks for projects as sub-customers (extra ``projects_as_sub_customers``)."""
    if not conn_id:
        return False
    from closeout.connections import get_connection

    value = get_connection(conn_id).extra.get(PROJECTS_SETTING)
    return value is True or str(value).strip().lower() in ("true", "1", "yes")


@dataclass(frozen=True)
class Project:
    """A closeout project billed for a linked client, as its QuickBooks sub-customer should be."""

    ref: str  # '<client_key>/<project_key>'
    client_key: str
    name: str
    client_name: str
    currency: str | None
    parent_id: str

    @property
    def display_name(self) -> str:
        """DisplayName is unique across all of a company's customers, vendors and employees (6240 otherwise), and
        two clients may each have a "Website" project: so the project's name with its client's. A colon separates
        the levels of FullyQualifiedName (``Client:Project``), so none is used in the name itself."""
        text = f"{self.name} ({self.client_name})".replace(":", "-")
        return _exact(text)[:DISPLAY_NAME_MAX]

    @property
    def fields_sha256(self) -> str:
        return hashlib.sha256(json.dumps({"name": self.display_name}).encode()).hexdigest()


def match_project(project: Project, children: Iterable[Remote], taken: dict[str, str]) -> Verdict:
    """Decide for one project not yet linked, among the sub-customers of its client's customer: one free
    sub-customer named as the project (its plain name or closeout's display name) links; several, a taken one, or a
    near match (case, spaces, punctuation) go to finance; none at all is created."""
    names = {_exact(project.name), project.display_name}
    folded = {near(n) for n in names if near(n)}
    pool = list(children)
    exact = [r for r in pool if _exact(r.name) in names]
    nearly = [r for r in pool if r not in exact and near(r.name) in folded]
    if nearly:
        candidates = tuple(r.summary(f"sub-customer named {r.name!r}") for r in (*exact, *nearly))
        return Verdict("review", reason="near_match", candidates=candidates,
                       detail=f"{len(nearly)} sub-customer(s) of customer {project.parent_id} nearly match the "
                              f"project {project.name!r}")  # fmt: skip
    if not exact:
        return Verdict("create")
    if len(exact) == 1 and exact[0].id not in taken:
        return Verdict("link", remote=exact[0], matched_by="name")
    candidates = tuple(r.summary("name" + (f" (already linked to {taken[r.id]})" if r.id in taken else ""))
                       for r in exact)  # fmt: skip
    return Verdict("review", reason="ambiguous", candidates=candidates,
                   detail=f"{len(exact)} sub-customer(s) of customer {project.parent_id} match the project "
                          f"{project.name!r}, or the one that does is linked to another project")  # fmt: skip


class QuickBooksProjects:
    """Sub-customers in one QuickBooks company (``QuickBooksHook``)."""

    system = "quickbooks"

    def __init__(self, hook: Any) -> None:
        from closeout.accounting.api.quickbooks import MAX_BATCH_ITEMS

        self.hook = hook
        self.company_id = hook.realm_id
        self.batch_size = MAX_BATCH_ITEMS
        self.currency_of: dict[str, str] = {}  # customer id -> its currency, as last listed

    def children(self) -> dict[str, list[Remote]]:
        """parent customer id -> its sub-customers (inactive ones too). ParentRef and Job are not filterable in
        QuickBooks' query language, so every customer is read (paged) and grouped here."""
        grouped: dict[str, list[Remote]] = {}
        for obj in self.hook.query_customers("Active IN (true, false)"):
            currency = (obj.get("CurrencyRef") or {}).get("value")
            if currency:
                self.currency_of[str(obj["Id"])] = str(currency)
            parent = (obj.get("ParentRef") or {}).get("value")
            if parent is not None:
                grouped.setdefault(str(parent), []).append(QuickBooksCustomers._remote(obj))
        return grouped

    def create_batch(self, members: list[dict[str, Any]], business_ref: str) -> dict[str, Remote | str]:
        """One ``POST /batch`` creating up to 30 sub-customers; per member its customer or why it was refused."""
        customers = []
        for member in members:
            customer: dict[str, Any] = {"DisplayName": member["name"], "Job": True,
                                        "ParentRef": {"value": member["parent"]}}  # fmt: skip
            if member["currency"]:
                customer["CurrencyRef"] = {"value": member["currency"]}  # a sub-customer bills in its parent's
            customers.append((str(member["ref"]), customer))
        return create_customers_batch(self.hook, customers, business_ref, "sub-customer")


def create_customers_batch(hook: Any, customers: list[tuple[str, dict[str, Any]]], business_ref: str,
                           what: str) -> dict[str, Remote | str]:  # fmt: skip
    """One QuickBooks ``POST /batch`` creating customers (or sub-customers); per key the customer made, or why that
    item was refused (6240: the name is taken). Items answer one by one; the call fails only as a whole (raised)."""
    items = [{"bId": str(n), "operation": "create", "Customer": customer}
             for n, (_, customer) in enumerate(customers, 1)]  # fmt: skip
    answers = {str(a.get("bId")): a for a in hook.batch(items, business_ref).body.get("BatchItemResponse") or []}
    result: dict[str, Remote | str] = {}
    for n, (key, _) in enumerate(customers, 1):
        answer = answers.get(str(n)) or {}
        if answer.get("Customer"):
            result[key] = QuickBooksCustomers._remote(answer["Customer"])
            continue
        errors = (answer.get("Fault") or {}).get("Error") or [{"Message": "no answer for this item"}]
        result[key] = f"QuickBooks refused the {what}: " + "; ".join(
            f"{e.get('code')} {e.get('Message')}: {e.get('Detail')}" for e in errors)
    return result


def projects_for(conn_id: str = "quickbooks_default", *,
                 warehouse_conn_id: str = "closeout_warehouse") -> QuickBooksProjects:  # fmt: skip
    from closeout.accounting.api.quickbooks import QuickBooksHook

    return QuickBooksProjects(QuickBooksHook(conn_id, warehouse_conn_id=warehouse_conn_id))


def link_projects(projects: QuickBooksProjects, *, warehouse_conn_id: str = "closeout_warehouse") -> LinkRun:
    """Link every project billed for a linked client to exactly one sub-customer of that client's customer,
    creating only what matches nothing (run after ``link_customers``: a project waits for its client's link)."""
    run = LinkRun(projects.system, projects.company_id)
    scope = {"system": projects.system, "company_id": projects.company_id}
    with connect(warehouse_conn_id, autocommit=True) as conn:
        rows = conn.execute(load_sql("accounting_api/projects_billed.sql"), scope).fetchall()
        unlinked = [(Project(r[0], r[1], r[3], r[4], r[5], str(r[6])), r[8], r[9]) for r in rows
                    if r[7] is None and r[9] != "open"]  # fmt: skip
        if not unlinked:
            return run
        taken = dict(conn.execute(load_sql("accounting_api/projects_taken.sql"), scope).fetchall())
        children = projects.children() if any(state != "create" for _, _, state in unlinked) else {}
        matched: list[dict[str, Any]] = []
        reviews: list[dict[str, Any]] = []
        to_create: list[tuple[Project, int | None]] = []
        for project, review_id, review_state in unlinked:
            verdict = (Verdict("create") if review_state == "create"
                       else match_project(project, children.get(project.parent_id, []), taken))  # fmt: skip
            if verdict.action == "link" and verdict.remote is not None:
                matched.append(_project_link(project, verdict.remote, str(verdict.matched_by), review_id))
                taken[verdict.remote.id] = project.ref
                run.linked[project.ref] = str(verdict.matched_by)
            elif verdict.action == "review":
                reviews.append({"closeout_ref": project.ref, "reason": verdict.reason, "detail": verdict.detail,
                                "candidates": list(verdict.candidates)})  # fmt: skip
            else:
                to_create.append((project, review_id if review_state == "create" else None))
        if matched:  # before any create, so a kill during the creates loses no match
            conn.execute(load_sql("accounting_api/projects_record.sql"), {**scope, "links": json.dumps(matched)})
        for start in range(0, len(to_create), projects.batch_size):
            _create_projects(conn, projects, scope, to_create[start : start + projects.batch_size], reviews, run)
        if reviews:
            opened = conn.execute(load_sql("accounting_api/projects_reviews_open.sql"),
                                  {**scope, "reviews": json.dumps(reviews)}).fetchall()  # fmt: skip
            run.reviews = [ref for _, ref in opened]
    log.info("%s %s project sub-customers: %d linked (%d created), %d to review", run.system, run.company_id,
             len(run.linked), len(run.created), len(run.reviews))  # fmt: skip
    return run


def _create_projects(conn: Any, projects: QuickBooksProjects, scope: dict[str, str],
                     batch: list[tuple[Project, int | None]], reviews: list[dict[str, Any]],
                     run: LinkRun) -> None:  # fmt: skip
    """One create batch under a requestid derived from its members (the outbox records it before the call); the
    links are recorded right after the answer, a refused member goes to review alone."""
    members = []
    for project, review_id in batch:
        # a sub-customer bills in its parent's currency: the parent's as QuickBooks listed it, else the client's
        currency = projects.currency_of.get(project.parent_id) or project.currency
        member: dict[str, Any] = {"ref": project.ref, "name": project.display_name, "parent": project.parent_id,
                                  "currency": currency.upper() if currency else None}  # fmt: skip
        if review_id is not None:  # finance said create: a new member, never the old refused answer replayed
            member["review"] = review_id
        members.append(member)
    business_ref = PROJECT_BATCH_PREFIX + json.dumps(members, sort_keys=True, separators=(",", ":"),
                                                     ensure_ascii=False)  # fmt: skip
    run.create_batches += 1
    try:
        answers = projects.create_batch(members, business_ref)
    except IdempotencyConflict as exc:  # cannot happen for a ref that is its body; never create blind
        answers = {m["ref"]: str(exc) for m in members}
    links = []
    for project, review_id in batch:
        answer = answers.get(project.ref, "no answer for this element")
        if isinstance(answer, str):
            reviews.append({"closeout_ref": project.ref, "reason": "create_refused", "detail": answer[:2000],
                            "candidates": []})  # fmt: skip
            continue
        links.append(_project_link(project, answer, "created", review_id))
        run.linked[project.ref] = "created"
        run.created.append(project.ref)
    if links:
        conn.execute(load_sql("accounting_api/projects_record.sql"), {**scope, "links": json.dumps(links)})


def _project_link(project: Project, remote: Remote, how: str, review_id: int | None) -> dict[str, Any]:
    return {"closeout_ref": project.ref, "external_id": remote.id, "remote_version": remote.version,
            "matched_by": how, "pushed_sha256": project.fields_sha256, "review_id": review_id,
            "detail": f"sub-customer of customer {project.parent_id}"}  # fmt: skip
