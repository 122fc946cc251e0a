"""Property-based: hostile pages and events through every normaliser and receiver (issue 15 item 2).

For each generated page or batch, on a real migrated warehouse:
* the run finishes (no exception escapes the normaliser, the store, the ingestion or the apply);
* every record is stored or quarantined with a reason, and nothing is silently dropped:
  records in == stored + quarantined + duplicate copies (each number read back from the warehouse).

Trackers: Harvest, Toggl and Clockify page bodies (as bytes, through the hook's own decoder) into the
versioned entry store. Stripe: inbox rows through ingestion and apply, ``/v1/events`` pages through the
backfill store. Toggl and Clockify: inbox events through the planning of the re-listing. The receiver:
signed hostile bodies over real HTTP, then on through ingestion.
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from closeout.payments import events as stripe_events
from closeout.sanitize.events import store_backfill_page
from closeout.trackers import runs, store, windowed
from closeout.trackers.clockify.normalize import ClockifyContext
from closeout.trackers.clockify.normalize import make_normalizer as clockify_normalizer
from closeout.trackers.clockify.sync import CLOCKIFY
from closeout.trackers.harvest.hook import decode
from closeout.trackers.harvest.normalize import normalize_page as harvest_normalizer
from closeout.trackers.toggl.normalize import TogglContext
from closeout.trackers.toggl.normalize import make_normalizer as toggl_normalizer
from closeout.trackers.toggl.sync import TOGGL
from closeout.warehouse.db import connect
from hostile_support import Raw, hostile_dates, hostile_numbers, hostile_text, mutate, to_json
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "webhooks"))
import receiver_support

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
NOW = int(time.time())


@pytest.fixture
def conn(warehouse):
    with connect(autocommit=True) as connection:
        store.prepare_session(connection)
        yield connection


# -- trackers ---------------------------------------------------------------------------------------------
def harvest_record(draw) -> dict[str, Any]:
    template = {
        "id": draw(st.integers(1, 6)), "spent_date": "2026-11-02", "hours": Raw("1.5"), "rounded_hours": Raw("1.5"),
        "notes": draw(hostile_text), "billable": True, "billable_rate": Raw("120.0"), "is_closed": True,
        "is_billed": False, "is_locked": False, "is_running": False, "invoice": None,
        "created_at": "2026-11-02T09:00:00Z", "updated_at": draw(st.sampled_from(
            ["2026-11-02T10:00:00Z", "2026-11-03T10:00:00Z"])),
        "client": {"id": 7, "name": "Acme", "currency": "USD"}, "project": {"id": 8, "name": "P"},
        "task": {"id": 9, "name": "T"}, "user": {"id": 10, "name": "U"},
    }  # fmt: skip
    fields = ["id", "spent_date", "hours", "rounded_hours", "notes", "billable", "billable_rate", "is_closed",
              "updated_at", "created_at", "client.id", "client.currency", "project.id", "task.id", "user.id",
              "invoice", "is_running"]  # fmt: skip
    return mutate(template, draw, fields)


def toggl_row(draw) -> dict[str, Any]:
    entries = [{"id": draw(st.integers(1, 6)), "seconds": draw(st.sampled_from([3600, 5400, 0])),
                "start": "2026-11-02T09:00:00+00:00", "stop": "2026-11-02T10:00:00+00:00",
                "at": draw(st.sampled_from(["2026-11-02T10:00:00+00:00", "2026-11-03T10:00:00+00:00"]))}
               for _ in range(draw(st.integers(1, 3)))]  # fmt: skip
    row = {"user_id": 10, "project_id": 8, "task_id": None, "billable": True, "currency": "USD",
           "hourly_rate_in_cents": 12000, "description": draw(hostile_text), "time_entries": entries}  # fmt: skip
    row = mutate(row, draw, ["user_id", "project_id", "task_id", "billable", "currency", "hourly_rate_in_cents",
                             "description", "time_entries"])  # fmt: skip
    if isinstance(row.get("time_entries"), list):
        row["time_entries"] = [mutate(te, draw, ["id", "seconds", "start", "stop", "at"]) if isinstance(te, dict)
                               else te for te in row["time_entries"]]  # fmt: skip
    return row


def clockify_item(draw) -> dict[str, Any]:
    hexid = draw(st.sampled_from(["5f3e00000000000000000001", "5f3e00000000000000000002", "5f3e00000000000000000003"]))
    item = {"_id": hexid, "userId": "6a0000000000000000000001", "projectId": "6b0000000000000000000001",
            "clientId": "6c0000000000000000000001", "taskId": None, "description": draw(hostile_text),
            "timeInterval": {"start": "2026-11-02T09:00:00Z", "end": "2026-11-02T10:00:00Z", "duration": 3600},
            "billable": True, "currency": "USD", "rate": 12000, "approvalState": "APPROVED",
            "invoicingState": "UNINVOICED", "isLocked": False}  # fmt: skip
    return mutate(item, draw, ["_id", "userId", "projectId", "clientId", "taskId", "description", "timeInterval.start",
                               "timeInterval.duration", "timeInterval.end", "billable", "currency", "rate",
                               "approvalState", "invoicingState"])  # fmt: skip


def _garbage(draw) -> Any:
    return draw(st.one_of(hostile_text, hostile_numbers, st.none(), st.just([1, 2])))


def _records_in(tracker: str, items: list[Any]) -> int:
    if tracker != "toggl":
        return len(items)
    return sum(len(r["time_entries"]) if isinstance(r, dict) and isinstance(r.get("time_entries"), list) else 1
               for r in items)  # fmt: skip


NORMALIZERS = {
    "harvest": lambda: harvest_normalizer,
    "toggl": lambda: toggl_normalizer(TogglContext(project_clients={"8": "7"})),
    "clockify": lambda: clockify_normalizer(ClockifyContext()),
}
RECORDS = {"harvest": harvest_record, "toggl": toggl_row, "clockify": clockify_item}


def _column(conn, query: str, param: Any) -> list[Any]:
    return [value for (value,) in conn.execute(query, (param,)).fetchall()]


def _check_tracker_page(conn, tracker: str, items: list[Any]) -> None:
    body = to_json({"time_entries": items}).encode()
    decoded = decode(body)["time_entries"]  # the hook's own decoder: msgspec, then the tolerant fallback
    with conn.transaction(force_rollback=True):
        (run_id,) = conn.execute(
            "INSERT INTO closeout_data.sync_runs (source, mode, status) VALUES (%s, 'full', 'running') "
            "RETURNING sync_run_id", (tracker,)).fetchone()  # fmt: skip
        result = store.apply_entries(conn, source=tracker, sync_run_id=run_id, items=decoded,
                                     currencies=store.known_currencies(conn), normalize=NORMALIZERS[tracker](),
                                     url="hypothesis", track_seen=True)  # fmt: skip
        stored = conn.execute("SELECT count(*) FROM closeout_data.time_entry_heads WHERE source = %s",
                              (tracker,)).fetchone()[0]  # fmt: skip
        reasons = _column(conn, "SELECT reason FROM closeout_data.quarantine WHERE last_sync_run_id = %s", run_id)
        notes = _column(conn, "SELECT notes FROM closeout_data.time_entry_versions WHERE sync_run_id = %s", run_id)
    n_in = _records_in(tracker, items)
    assert result.records == n_in
    assert stored + result.quarantined + result.duplicates == n_in, (stored, result, items)
    assert (result.quarantined > 0) == (len(reasons) > 0)
    assert len(reasons) <= result.quarantined and all(r.strip() for r in reasons)
    assert all("\x00" not in n for n in notes if n)


@pytest.mark.parametrize("tracker", sorted(RECORDS))
@SETTINGS
@given(data=st.data())
def test_any_tracker_page_is_stored_or_quarantined_record_by_record(conn, tracker, data):
    record = RECORDS[tracker]
    items = data.draw(st.lists(st.one_of(st.just("record"), st.just("garbage")), min_size=1, max_size=10))
    page = [record(data.draw) if kind == "record" else _garbage(data.draw) for kind in items]
    _check_tracker_page(conn, tracker, page)


# -- Stripe -----------------------------------------------------------------------------------------------
_counter = itertools.count(1)
EVENT_TYPES = ["invoice.paid", "invoice.updated", "invoice.finalized", "invoice.voided", "invoice_payment.paid",
               "charge.refunded", "charge.dispute.created", "customer.updated", "invoice.payment_failed"]  # fmt: skip


def stripe_event(draw, invoice: str, n: int) -> Any:
    kind = draw(st.sampled_from(EVENT_TYPES))
    event = {
        "id": f"evt_h{n}_{draw(st.integers(1, 4))}", "object": "event", "type": kind,
        "created": draw(st.sampled_from([NOW, NOW - 60, NOW + 5])),
        "data": {"object": {
            "id": invoice if kind.startswith("invoice.") else f"ch_{n}", "object": kind.split(".")[0],
            "status": draw(st.sampled_from(["paid", "open", "void", "uncollectible", "draft"])),
            "invoice": invoice, "charge": f"ch_{n}", "amount_paid": draw(st.sampled_from([0, 500, 1000])),
            "amount_refunded": 100, "amount": 300, "total": 1000, "created": NOW,
            "status_transitions": {"paid_at": NOW}, "payment": {"charge": f"ch_{n}"},
            "description": draw(hostile_text), "metadata": {"note": draw(hostile_text)},
        }},
    }  # fmt: skip
    mutated = mutate(event, draw, ["id", "type", "created", "data", "data.object", "data.object.id",
                                   "data.object.object", "data.object.status", "data.object.amount_paid",
                                   "data.object.total", "data.object.invoice", "data.object.status_transitions",
                                   "data.object.payment", "data.object.description", "data.object.created",
                                   "data.object.metadata.note", "data.object.amount_refunded"])  # fmt: skip
    return draw(st.sampled_from([mutated, mutated, mutated, "NOT JSON", Raw("NaN"), [mutated]]))


def _body(event: Any) -> str:
    return event if event == "NOT JSON" else to_json(event)


def _open_invoice(conn, n: int) -> str:
    stripe_id = f"in_h{n}"
    conn.execute(
        """INSERT INTO closeout_data.invoices (invoice_id, client_key, currency, period_start, period_end,
               billing_period, status, version, total_minor, payment_terms_days, publish_policy, frozen_version,
               frozen_at, stripe_invoice_id)
           VALUES (%s, %s, 'USD', '2026-10-01', '2026-10-31', 'monthly', 'open', 1, 1000, 30, 'auto', 1,
                   clock_timestamp(), %s)""",
        (f"inv-h{n}", f"harvest:h{n}", stripe_id),
    )
    return stripe_id


@SETTINGS
@given(data=st.data())
def test_any_stripe_inbox_batch_is_ingested_or_quarantined_event_by_event_and_applies(conn, data):
    n = next(_counter)
    invoice = _open_invoice(conn, n)
    batch = [stripe_event(data.draw, invoice, n) for _ in range(data.draw(st.integers(1, 8)))]
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO closeout_data.webhook_inbox (vendor, event_id, event_type, headers, body)
               VALUES ('stripe', %s, 'hypothesis', '{}', %s)""",
            [(f"inbox-{n}-{i}", _body(e)) for i, e in enumerate(batch)],
        )
    before = conn.execute("SELECT count(*) FROM closeout_data.stripe_events").fetchone()[0]
    counts = stripe_events.ingest_webhooks(conn)
    after = conn.execute("SELECT count(*) FROM closeout_data.stripe_events").fetchone()[0]
    outcomes = _column(conn, "SELECT outcome FROM closeout_data.webhook_inbox WHERE event_id LIKE %s", f"inbox-{n}-%")
    assert counts["inbox"] == len(batch) == len(outcomes)
    assert all(o == "moved to stripe_events" or o.startswith("quarantined: ") for o in outcomes)
    assert sum(o.startswith("quarantined: ") for o in outcomes) == counts["quarantined"]
    # in == stored now + already stored (same id, an earlier example) + quarantined + duplicate copies
    already = counts["inbox"] - counts["new"] - counts["quarantined"] - counts["duplicates"]
    assert after - before == counts["new"] and already >= 0
    assert already == 0 or any(isinstance(e, dict) for e in batch)
    if counts["quarantined"]:
        assert conn.execute("SELECT count(*) FROM closeout_data.event_quarantine WHERE reason <> ''").fetchone()[0]

    applied = stripe_events.apply(conn, None)  # finishes, whatever is in the batch
    assert sum(applied.values()) >= counts["new"]
    pending = conn.execute("SELECT count(*) FROM closeout_data.stripe_events WHERE processed_at IS NULL").fetchone()[0]
    assert pending == 0, "every stored event has an outcome"


@SETTINGS
@given(data=st.data())
def test_any_backfill_page_is_stored_or_quarantined_event_by_event(conn, data):
    n = next(_counter)
    page_events = [stripe_event(data.draw, f"in_b{n}", n) for _ in range(data.draw(st.integers(0, 8)))]
    events = [e for e in page_events if e != "NOT JSON"]
    shape = data.draw(st.sampled_from(["list", "list", "list", "not a list", "not json"]))
    body = {"list": to_json({"object": "list", "data": events, "has_more": False}),
            "not a list": to_json({"object": "list", "data": "nope"}), "not json": "{oops"}[shape]
    before = conn.execute("SELECT count(*) FROM closeout_data.stripe_events").fetchone()[0]
    stored = store_backfill_page(conn, body)
    after = conn.execute("SELECT count(*) FROM closeout_data.stripe_events").fetchone()[0]
    assert after - before == stored.new
    if shape != "list":
        assert stored.quarantined == 1 and stored.new == 0
        return
    already = len(events) - stored.new - stored.quarantined - stored.duplicates
    assert already >= 0
    if stored.newest is not None:
        assert 946684800 <= stored.newest < 4102444800, "only a plausible event moves the cursor"


# -- Toggl / Clockify inbox -----------------------------------------------------------------------------------
def tracker_event(draw, vendor: str) -> str:
    if vendor == "toggl":
        event = {"event_id": 1, "metadata": {"action": "updated", "model": "time_entry"},
                 "payload": {"id": 5, "start": draw(hostile_dates), "description": draw(hostile_text)}}  # fmt: skip
        event = mutate(event, draw, ["payload", "payload.start", "payload.id", "metadata"])
    else:
        event = {"id": "5f3e00000000000000000001", "description": draw(hostile_text),
                 "timeInterval": {"start": draw(hostile_dates), "end": None}}  # fmt: skip
        event = mutate(event, draw, ["timeInterval", "timeInterval.start", "id"])
    return draw(st.sampled_from([to_json(event), to_json(event), "NOT JSON", "[]", to_json(Raw("NaN"))]))


@pytest.mark.parametrize("tracker", [TOGGL, CLOCKIFY], ids=["toggl", "clockify"])
@SETTINGS
@given(data=st.data())
def test_any_tracker_inbox_is_planned_or_quarantined_event_by_event(conn, tracker, data):
    n = next(_counter)
    bodies = [tracker_event(data.draw, tracker.source) for _ in range(data.draw(st.integers(1, 8)))]
    with conn.transaction(force_rollback=True):
        with conn.cursor() as cur:
            cur.executemany(
                """INSERT INTO closeout_data.webhook_inbox (vendor, event_id, event_type, headers, body)
                   VALUES (%s, %s, 'time_entry.updated', '{}', %s)""",
                [(tracker.source, f"h{n}-{i}", b) for i, b in enumerate(bodies)],
            )
        (run_id,) = conn.execute(
            "INSERT INTO closeout_data.sync_runs (source, mode, status, checkpoint) VALUES (%s, 'incremental', "
            "'running', %s) RETURNING sync_run_id", (tracker.source, Jsonb({}))).fetchone()  # fmt: skip
        plan = windowed._plan_inbox(conn, tracker, runs.load(conn, run_id))
        quarantined_rows = conn.execute(
            """SELECT count(*) FROM closeout_data.webhook_inbox WHERE vendor = %s AND processed_at IS NOT NULL
                 AND outcome LIKE 'quarantined: %%'""", (tracker.source,)).fetchone()[0]  # fmt: skip
        reasons = conn.execute("SELECT count(*) FROM closeout_data.event_quarantine WHERE vendor = %s AND "
                               "reason <> ''", (tracker.source,)).fetchone()[0]  # fmt: skip
    assert plan["events"] == len(bodies)
    planned_days = sum(1 for b in bodies if tracker.event_days("x", b))
    assert plan["quarantined"] == quarantined_rows == len(bodies) - planned_days
    assert (reasons > 0) == (plan["quarantined"] > 0)
    for first, last in plan["ranges"].values():
        assert date(2000, 1, 1) <= date.fromisoformat(first) <= date.fromisoformat(last) < date(2100, 1, 1)


# -- the receiver, end to end ------------------------------------------------------------------------------------
@pytest.fixture
def receiver(warehouse, monkeypatch):
    from closeout.webhooks.app import create_app

    for name, value in receiver_support.vendor_connections().items():
        monkeypatch.setenv(name, value)
    with receiver_support.serve_in_thread(create_app()) as served:
        yield served


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_hostile_signed_events_through_the_receiver_end_stored_or_quarantined(receiver, data):
    n = next(_counter)
    sent = [stripe_event(data.draw, f"in_r{n}", n) for _ in range(data.draw(st.integers(1, 5)))]
    accepted = 0
    for event in sent:
        body = _body(event).encode()
        response = receiver_support.request(receiver, "POST", "/stripe", receiver_support.stripe_headers(body), body)
        assert response.status < 500, (response.status, response.body)
        accepted += response.status == 200
    with connect(autocommit=True) as conn:
        pending = conn.execute("SELECT count(*) FROM closeout_data.webhook_inbox WHERE processed_at IS NULL "
                               "AND vendor = 'stripe'").fetchone()[0]  # fmt: skip
        counts = stripe_events.ingest_webhooks(conn)
        assert counts["inbox"] == pending <= accepted
        assert counts["new"] + counts["quarantined"] + counts["duplicates"] <= pending
        left = conn.execute("SELECT count(*) FROM closeout_data.webhook_inbox WHERE processed_at IS NULL").fetchone()[0]
        assert left == 0
        stripe_events.apply(conn, None)


def test_the_suite_sees_what_it_means_to(conn):
    """The strategies do produce the poison: a NUL note is cleaned, a 1e-100000 quarantined (no vacuous pass)."""
    page = [{"id": 1, "spent_date": "2026-11-02", "hours": Raw("1e-100000"), "rounded_hours": Raw("1"),
             "notes": None, "billable": True, "billable_rate": None, "is_closed": True, "is_billed": False,
             "is_locked": False, "is_running": False, "invoice": None, "created_at": None,
             "updated_at": "2026-11-02T10:00:00Z", "client": {"id": 7, "currency": "USD"}, "project": {"id": 8},
             "task": {"id": 9}, "user": {"id": 10}}]  # fmt: skip
    page.append({**page[0], "id": 2, "hours": Raw("1.5"), "notes": "a\x00b"})
    decoded = decode(to_json({"time_entries": page}).encode())["time_entries"]
    with conn.transaction(force_rollback=True):
        (run_id,) = conn.execute("INSERT INTO closeout_data.sync_runs (source, mode, status) VALUES ('harvest', "
                                 "'full', 'running') RETURNING sync_run_id").fetchone()  # fmt: skip
        result = store.apply_entries(conn, source="harvest", sync_run_id=run_id, items=decoded,
                                     currencies=store.known_currencies(conn), normalize=harvest_normalizer,
                                     url="t")  # fmt: skip
        notes = conn.execute("SELECT notes FROM closeout.time_entries WHERE source_id = '2'").fetchone()[0]
        reason = conn.execute("SELECT reason FROM closeout.quarantine WHERE source_id = '1'").fetchone()[0]
    assert (result.records, result.quarantined, result.repaired) == (2, 1, 1)
    assert notes == "a\ufffdb" and "1E-100000" in reason
    assert json.loads(json.dumps(notes)) == notes


def _tracker_delivery(draw, vendor: str, n: int, i: int) -> tuple[list[tuple[str, str]], bytes]:
    body = tracker_event(draw, vendor)
    if vendor == "toggl":
        try:
            event = json.loads(body)
        except ValueError:
            event = None
        if isinstance(event, dict):  # a fresh id per delivery: the receiver dedupes on it
            event["event_id"] = n * 100 + i
            body = to_json(event)
        data = body.encode()
        return receiver_support.toggl_headers(data), data
    data = body.encode()
    return receiver_support.clockify_headers(), data


@pytest.mark.parametrize("tracker", [TOGGL, CLOCKIFY], ids=["toggl", "clockify"])
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_hostile_tracker_events_through_the_receiver_are_planned_or_quarantined(receiver, tracker, data):
    n = next(_counter)
    count = data.draw(st.integers(1, 5))
    for i in range(count):
        headers, body = _tracker_delivery(data.draw, tracker.source, n, i)
        response = receiver_support.request(receiver, "POST", f"/{tracker.source}", headers, body)
        assert response.status < 500, (response.status, response.body)
    with connect(autocommit=True) as conn:
        pending = _column(conn, "SELECT body FROM closeout_data.webhook_inbox WHERE processed_at IS NULL AND "
                                "vendor = %s", tracker.source)  # fmt: skip
        (run_id,) = conn.execute(
            "INSERT INTO closeout_data.sync_runs (source, mode, status, checkpoint) VALUES (%s, 'incremental', "
            "'failed', %s) RETURNING sync_run_id", (tracker.source, Jsonb({}))).fetchone()  # fmt: skip
        plan = windowed._plan_inbox(conn, tracker, runs.load(conn, run_id))
        assert plan["events"] == len(pending)
        assert plan["quarantined"] == sum(1 for b in pending if not tracker.event_days("x", b))
        conn.execute("UPDATE closeout_data.webhook_inbox SET processed_at = clock_timestamp() "
                     "WHERE processed_at IS NULL")  # fmt: skip
