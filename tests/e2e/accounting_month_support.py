"""Issue 17's accounting month end to end: the work in Harvest, how closeout is configured for it, and the proof read
from the QuickBooks and Xero sandboxes themselves. Only what the accounting month adds lives here; connecting the
sandboxes, reading links and held records come from the push tests (``accounting_push_support``), planting
customers someone else made there from the link tests (``test_accounting_links.Books``), the killed worker's
plumbing from the push DAG tests, the alert receivers and the Airflow API server from the gate tests.

The month (last month, so the close may run today), three USD clients of a generated Harvest account:

* A: 2.0 h + 1.5 h; pays by card, its payment is swept to the bank by an automatic payout, then refunded in full;
  after the books are green an accountant raises its invoice in QuickBooks and in Xero.
* B: 4.0 h, cut to 3.0 h in Harvest after its invoice went out: the close issues the hour back as a Stripe credit
  note on B's open invoice; B pays the rest after the close.
* C, "Initech LLC": two customers of that name already exist in each accounting system, so C waits for finance
  (no third customer, its invoice held as ``customer_link``) until finance links it with the documented command.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
for _folder in ("accounting_push", "accounting_api", "gate", "controls"):
    if str(HERE.parent / _folder) not in sys.path:
        sys.path.insert(0, str(HERE.parent / _folder))

from accounting_push_support import held  # noqa: E402
from closeout.accounting.push.books import QuickBooksBooks, XeroBooks  # noqa: E402
from closeout.warehouse.db import connect  # noqa: E402
from controls_support import conn_json_as, login_in  # noqa: E402
from gate_support import SMTP_LOGIN, WEBHOOK_TOKEN  # noqa: E402
from payments_support import last_month  # noqa: E402
from test_accounting_links import Books as Planter  # noqa: E402 - plants customers someone else made there
from test_accounting_push_dag import _env, _waiting_on_links  # noqa: E402 - the killed worker's plumbing

SYSTEMS = ("quickbooks", "xero")
AMBIGUOUS = "Initech LLC"  # client C's name: two customers of that name already exist in each system
# client -> [(hours, hours after the cut)]: B's entry is cut by an hour after its invoice went out
WORK: dict[str, list[tuple[float, float | None]]] = {"a": [(2.0, None), (1.5, None)], "b": [(4.0, 3.0)],
                                                     "c": [(2.5, None)]}  # fmt: skip
NAMES = {"a": "Oceanic Analytics", "b": "Globex Holdings", "c": AMBIGUOUS}


# -- the work -------------------------------------------------------------------------------------------------------
@dataclass
class Work:
    """What Harvest was given: client letter -> Harvest client id, and its entries (id, hours after any cut)."""

    clients: dict[str, int] = field(default_factory=dict)
    entries: dict[str, list[tuple[int, float, float | None]]] = field(default_factory=dict)

    @property
    def period(self) -> str:
        return last_month().strftime("%Y-%m")

    def client_key(self, letter: str) -> str:
        return f"harvest:{self.clients[letter]}"


def _billable_slots(harvest) -> list[tuple[int, int, int, int]]:
    """(client id, project id, task id, user id) per active USD client of the account: its first active billable
    project with a member and a billable task (the generated account's catalogue, read from the sandbox)."""
    slots = []
    for client_id, client in sorted(harvest._clients.items()):
        if client["currency"] != "USD" or not client["is_active"]:
            continue
        for project_id, project in sorted(harvest._projects.items()):
            if project["client"]["id"] != client_id or not (project["is_active"] and project["is_billable"]):
                continue
            tasks = sorted(t for (p, t), a in harvest._task_assignments.items()
                           if p == project_id and a["billable"] and a["is_active"])  # fmt: skip
            users = sorted(u for (u, p), a in harvest._user_assignments.items() if p == project_id and a["is_active"])
            if tasks and users:
                slots.append((client_id, project_id, tasks[0], users[0]))
                break
    return slots


def fill_harvest(harvest) -> Work:
    """The month above, in a generated Harvest account (no entries of its own): closed (approved) billable time."""
    from sandbox.harvest.data import generate_dataset

    start = last_month()
    harvest.load(generate_dataset(0, seed=5, anchor=start + timedelta(days=40), n_clients=10))
    slots = _billable_slots(harvest)
    assert len(slots) >= len(WORK), slots
    work = Work()
    for (letter, items), (client_id, project_id, task_id, user_id) in zip(WORK.items(), slots, strict=False):
        work.clients[letter] = client_id
        for n, (hours, cut) in enumerate(items):
            entry = harvest.create_entry(project_id=project_id, task_id=task_id, user_id=user_id, hours=hours,
                                         spent_date=start + timedelta(days=2 + n), is_closed=True,
                                         notes=f"{letter} work {n}")  # fmt: skip
            assert entry["billable"] and entry["billable_rate"], entry
            work.entries.setdefault(letter, []).append((entry["id"], hours, cut))
    return work


def cut_entries(harvest, work: Work) -> None:
    """B's entry is cut after its invoice went out (the close's final sync and drafting make it a credit note)."""
    for entries in work.entries.values():
        for entry_id, _, cut in entries:
            if cut is not None:
                harvest.update_entry(entry_id, hours=cut)


def configure(folder: Path, work: Work, env) -> None:
    """Billing (names, e-mails, USD), every output folder; ``env`` is a pytest MonkeyPatch."""
    clients = [{"client_key": work.client_key(c), "name": NAMES[c], "currency": "USD", "grouping": "project",
                "email": f"ap@{c}.example"} for c in work.clients]  # fmt: skip
    path = folder / "clients.json"
    path.write_text(json.dumps({"defaults": {"require_approval": False}, "clients": clients}), encoding="utf-8")
    env.setenv("CLOSEOUT_BILLING_CONFIG", str(path))
    for var, sub in {"CLOSEOUT_EXPORT_DIR": "exports", "CLOSEOUT_DATA_DOCS_DIR": "docs",
                     "CLOSEOUT_REPORTS_URL": "reports", "CLOSEOUT_ARTIFACTS_URL": "artifacts"}.items():  # fmt: skip
        env.setenv(var, str(folder / sub))
    env.delenv("CLOSEOUT_ARTIFACTS_PUBLIC_URL", raising=False)


def connect_alerts(env, smtp, hook) -> None:
    """finance_smtp and finance_webhook pointed at the local receivers (as the gate tests' ``finance_conns``)."""
    env.setenv("AIRFLOW_CONN_FINANCE_SMTP", json.dumps(
        {"conn_type": "smtp", "host": "127.0.0.1", "port": smtp.port, "login": SMTP_LOGIN[0],
         "password": SMTP_LOGIN[1], "extra": {"from": "closeout@company.test", "to": ["ana@finance.test"],
                                               "starttls": False, "timeout": 10}}))  # fmt: skip
    env.setenv("AIRFLOW_CONN_FINANCE_WEBHOOK", json.dumps(
        {"conn_type": "http", "host": hook.url, "password": WEBHOOK_TOKEN}))  # fmt: skip


def plant_namesakes(system: str, sandbox: Any) -> list[str]:
    """Two customers an accountant made before closeout was connected, both named as client C (QuickBooks keeps
    DisplayName unique, so the second carries it as its CompanyName; Xero keeps Name unique among active
    contacts, so the first is archived). Returns their ids, the live one last."""
    planter = Planter(system, sandbox)
    if system == "quickbooks":
        return [planter.plant("c1", AMBIGUOUS), planter.plant("c2", f"{AMBIGUOUS} (Leeds)", also_known_as=AMBIGUOUS)]
    return [planter.plant("c1", AMBIGUOUS, archived=True), planter.plant("c2", AMBIGUOUS)]


# -- what each sandbox holds --------------------------------------------------------------------------------------
def entity_of(system: str, kind: str) -> tuple[str, str]:
    """(the sandbox's entity, its id field) that closeout's ``object_kind`` is pushed as, from the push's own maps
    (so a kind added to the push is counted without changing this month)."""
    if kind == "customer" or (kind == "project" and system == "quickbooks"):  # sub-customers are Customers there
        return ("Customer", "Id") if system == "quickbooks" else ("Contacts", "ContactID")
    if system == "quickbooks":
        entities = dict(QuickBooksBooks.entities)
        assert kind in entities, f"object kind {kind!r} is linked but QuickBooksBooks.entities does not name it"
        return entities[kind], "Id"
    endpoints = dict(XeroBooks.endpoints)
    assert kind in endpoints, f"object kind {kind!r} is linked but XeroBooks.endpoints does not name it"
    return endpoints[kind][0], endpoints[kind][1]


def linked(warehouse, system: str) -> dict[str, list[str]]:
    """object_kind -> external ids closeout recorded for ``system`` (closeout.accounting_links)."""
    out: dict[str, list[str]] = defaultdict(list)
    for kind, external_id in warehouse.rows("SELECT object_kind, external_id FROM closeout.accounting_links "
                                            "WHERE system = %s ORDER BY 1, 2", (system,)):  # fmt: skip
        out[kind].append(external_id)
    return dict(out)


def exactly_once(warehouse, system: str, sandbox: Any, planted: list[str]) -> dict[str, int]:
    """Every object closeout recorded for ``system`` is in the sandbox exactly once, and the sandbox holds nothing
    else than those and the customers planted before: per entity, the objects there are exactly the linked ones
    plus the planted ones, each created once (its own create counter), none twice. Returns entity -> objects."""
    by_entity: dict[tuple[str, str], list[str]] = defaultdict(list)
    for kind, ids in linked(warehouse, system).items():
        by_entity[entity_of(system, kind)].extend(ids)
    counts = sandbox.create_counts()
    tally = {}
    for (entity, id_field), ids in sorted(by_entity.items()):
        there = [str(o[id_field]) for o in sandbox.objects(entity)]
        extra = set(planted) if entity in ("Customer", "Contacts") else set()
        assert len(ids) == len(set(ids)), (system, entity, "one object linked twice", ids)
        assert len(there) == len(set(there)), (system, entity, there)
        assert set(there) == set(ids) | extra, (system, entity, "there, not linked:", set(there) - set(ids) - extra,
                                                "linked, not there:", set(ids) - set(there))  # fmt: skip
        assert counts.get(entity, 0) == len(there), (system, entity, counts, len(there))
        tally[entity] = len(there)
    return tally


def writes_since(sandbox: Any, mark: int) -> list[tuple]:
    """POST/PUT requests the sandbox received after its log had ``mark`` entries."""
    return [r for r in sandbox.stats()["log"][mark:] if r[0] in ("POST", "PUT")]


def open_reviews(warehouse) -> dict[str, tuple[int, str, str]]:
    """system -> (review id, closeout ref, reason) of the open accounting link reviews."""
    return {r[0]: (r[1], r[2], r[3]) for r in warehouse.rows(
        "SELECT system, review_id, closeout_ref, reason FROM closeout.accounting_link_reviews WHERE state = 'open'")}


def held_refs(warehouse, system: str) -> dict[str, tuple[str, str]]:
    """closeout_ref -> (object_kind, reason) of the open push exceptions of ``system``."""
    return {ref: v[:2] for ref, v in held(warehouse, system).items()}


# -- finance's command line --------------------------------------------------------------------------------------
def links_command(*args: str, **env: str) -> subprocess.CompletedProcess:
    """``python -m closeout.accounting links ...`` as finance types it (docs/accounting-api.md)."""
    return subprocess.run([sys.executable, "-m", "closeout.accounting", "links", *args], capture_output=True,
                          text=True, timeout=120, env=_env(**env))  # fmt: skip


def resolve_as_finance(review_id: int, remote_id: str, *, api_url: str, token: str, person: str) -> str:
    """Finance links a reviewed client to the customer they chose, identified by their own Airflow token and
    through a warehouse login in closeout_finance. Returns the command's output."""
    with login_in("closeout_finance") as finance_login:
        done = links_command("resolve", "--review-id", str(review_id), "--remote-id", remote_id, "--why",
                             "the live record is theirs", CLOSEOUT_AIRFLOW_URL=api_url, CLOSEOUT_AIRFLOW_TOKEN=token,
                             CLOSEOUT_FINANCE_APPROVERS=person,
                             AIRFLOW_CONN_CLOSEOUT_WAREHOUSE=conn_json_as(finance_login))  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


# -- the killed worker ---------------------------------------------------------------------------------------------
def kill_push_between_answer_and_record(system: str, sandbox: Any) -> int:
    """``python -m closeout.accounting.push`` (a real closeout_pipeline login, another process) sends its batch, the
    sandbox answers, and the worker is SIGKILLed while it waits to record the links (the table is share-locked).
    Returns how many objects the sandbox created meanwhile (there, and not recorded by closeout)."""
    before = sum(sandbox.create_counts().values())
    with login_in("closeout_pipeline") as pipeline_login, connect() as blocker:
        blocker.execute("LOCK TABLE closeout_data.accounting_links IN SHARE MODE")
        worker = subprocess.Popen([sys.executable, "-m", "closeout.accounting.push", "--system", system],
                                  env=_env(AIRFLOW_CONN_CLOSEOUT_WAREHOUSE=conn_json_as(pipeline_login)),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while not (backend := _waiting_on_links(blocker)):
                assert worker.poll() is None, worker.communicate()
                assert time.monotonic() < deadline, "the worker never reached the link record"
                time.sleep(0.1)
            made = sum(sandbox.create_counts().values()) - before
            worker.send_signal(signal.SIGKILL)
            worker.wait(30)
            blocker.execute("SELECT pg_terminate_backend(%s)", (backend,))
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait(30)
    assert worker.returncode == -signal.SIGKILL, worker.returncode
    return made


def pending_batches(warehouse) -> dict[str, int]:
    return dict(warehouse.rows("SELECT system, count(*) FROM closeout_data.accounting_push_batches "
                               "WHERE state = 'pending' GROUP BY system"))  # fmt: skip


def check_statuses(warehouse, airflow_run_id: str) -> dict[str, str]:
    from expense_month_support import check_statuses as statuses

    return statuses(warehouse, airflow_run_id)


def failed_rows(warehouse, airflow_run_id: str) -> dict[str, list[dict[str, Any]]]:
    """check name -> evidence rows of the failed checks of the reconciliation that Airflow run recorded."""
    return {name: (evidence or {}).get("rows") or [] for name, evidence in warehouse.rows(
        """SELECT c.check_name, c.evidence FROM closeout.recon_checks c JOIN closeout_data.recon_runs r USING (run_id)
           WHERE r.airflow_run_id = %s AND c.status = 'failed'""", (airflow_run_id,))}  # fmt: skip



def diagnosis(warehouse, path: Path) -> Path:
    """What a failed accounting check is about, written next to the month's files: closeout's invoices and credit
    notes, the links, the latest invoices read back, the remote copy and the ledger's balances per account."""
    queries = {
        "invoices": "SELECT invoice_id, stripe_number, client_key, status, total_minor, amount_paid_minor "
                    "FROM closeout.invoices ORDER BY 1",
        "credit_notes": "SELECT * FROM closeout.credit_notes",
        "links": "SELECT system, object_kind, closeout_ref, external_id, total_minor, currency, matched_by "
                 "FROM closeout.accounting_links ORDER BY 1, 2, 3",
        "read_back_invoices": "SELECT system, ingest_id, invoice_number, total_minor, amount_paid_minor, "
                              "amount_due_minor, status FROM closeout.accounting_invoices ORDER BY 3, 2",
        "remote": "SELECT system, entity, external_id, object_kind, reference, total_minor, status, deleted "
                  "FROM closeout.accounting_remote_objects ORDER BY 1, 2, 5",
        "ledger": "SELECT account, currency, sum(debit_minor - credit_minor) FROM closeout.ledger_lines "
                  "GROUP BY 1, 2 ORDER BY 1",
        "journals": "SELECT kind, count(*) FROM closeout.ledger_journals GROUP BY 1 ORDER BY 1",
    }  # fmt: skip
    found = {name: [list(map(str, r)) for r in warehouse.rows(q)] for name, q in queries.items()}
    path.write_text(json.dumps(found, indent=1), encoding="utf-8")
    return path
