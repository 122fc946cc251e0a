"""Clockify webhooks carry no event id: a replay of an event under a new delivery id (or none, as Clockify
itself sends) is recognised by its content and stored once; a real change back to an earlier state is not
mistaken for a replay."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from closeout.webhooks.app import create_app
from conftest import set_conn_extra
from receiver_support import (
    CLOCKIFY_TOKEN,
    clockify_entry,
    clockify_headers,
    request,
    serve_in_thread,
    vendor_connections,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def served(warehouse, monkeypatch):
    for name, value in vendor_connections().items():
        monkeypatch.setenv(name, value)
    with serve_in_thread(create_app()) as served:
        yield served


def post(served, body: bytes, event: str = "TIME_ENTRY_UPDATED", delivery: str | None = None) -> str:
    response = request(served, "POST", "/clockify", clockify_headers(event, delivery=delivery), body)
    assert response.status == 200, response
    return response.json()["status"]


def inbox(warehouse) -> list[tuple]:
    return warehouse.rows(
        """SELECT event_type, object_key, redeliveries, body FROM closeout_data.webhook_inbox
           WHERE vendor = 'clockify' ORDER BY inbox_id"""
    )


def test_a_replay_under_a_new_delivery_id_is_stored_once(served, warehouse):
    body = clockify_entry()
    assert post(served, body, delivery="d-1") == "stored"
    assert post(served, body, delivery="d-1") == "duplicate"  # the vendor's own retry
    assert post(served, body, delivery="d-2") == "duplicate"  # a replay with a fresh delivery id
    assert post(served, body) == "duplicate"  # as Clockify sends it: no delivery id at all
    reserialised = json.dumps(json.loads(body), indent=2, sort_keys=True).encode()
    assert reserialised != body
    assert post(served, reserialised, delivery="d-3") == "duplicate"  # same JSON, other bytes
    rows = inbox(warehouse)
    assert [(r[0], r[1], r[2]) for r in rows] == [("TIME_ENTRY_UPDATED", "5f0c3a0e1c2d3e4f5a6b7c8d", 4)]
    assert rows[0][3].encode() == body  # the first delivery, byte for byte


def test_a_change_back_to_an_earlier_state_is_news_not_a_replay(served, warehouse):
    first, second = clockify_entry(description="A"), clockify_entry(description="B")
    assert post(served, first) == "stored"
    assert post(served, second) == "stored"
    assert post(served, first) == "stored"  # A -> B -> A: the entry really changed back
    assert post(served, first, delivery="d-9") == "duplicate"  # ...and a replay of that is one
    assert post(served, first, event="TIME_ENTRY_DELETED") == "stored"  # another event type is another event
    other = clockify_entry(entry_id="5f0c3a0e1c2d3e4f5a6b7c99", description="A")
    assert post(served, other) == "stored"  # another entry with the same fields is another event
    assert [json.loads(r[3])["description"] for r in inbox(warehouse)] == ["A", "B", "A", "A", "A"]


def test_concurrent_replays_under_different_delivery_ids_store_one_event(served, warehouse):
    body = clockify_entry(description="raced")
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda i: post(served, body, delivery=f"race-{i}"), range(16)))
    assert sorted(outcomes) == ["duplicate"] * 15 + ["stored"]
    rows = inbox(warehouse)
    assert len(rows) == 1 and rows[0][2] == 15


def test_two_subscriptions_delivering_the_same_events_store_each_once(warehouse, clockify, monkeypatch):
    """The sandbox sends each event once per webhook, each with its own delivery id, and every delivery twice
    with the same id: the inbox holds each event once."""
    for name, value in vendor_connections(clockify=False).items():
        monkeypatch.setenv(name, value)
    with serve_in_thread(create_app()) as served:
        url = f"{served.url}/clockify"
        _, token_a = clockify.add_webhook(url)
        _, token_b = clockify.add_webhook(url)
        set_conn_extra(monkeypatch, "clockify_default", webhook_token=[token_a, token_b])
        clockify.webhook_faults(duplicate=1.0, seed=5)
        entry = clockify.create_entry(description="twice subscribed")
        clockify.update_entry(entry["id"], description="edited once")
        results = clockify.deliver()
        assert len({delivery for delivery, _ in results}) == 4  # 2 events x 2 webhooks
        assert len(results) == 8 and {status for _, status in results} == {200}
    rows = inbox(warehouse)
    assert sorted((r[0], r[1]) for r in rows) == [("NEW_TIME_ENTRY", entry["id"]), ("TIME_ENTRY_UPDATED", entry["id"])]
    assert sum(r[2] for r in rows) == 6  # every other delivery was recognised and counted
    assert CLOCKIFY_TOKEN not in {token_a, token_b}


def test_a_replay_of_an_older_state_after_a_newer_one_is_stored_because_it_cannot_be_told_from_a_revert(
    served, warehouse
):
    """Without an event id or a change time, "A arrives again after B" is either a late replay of A or the
    entry changed back to A; storing it costs one harmless re-list of its days (the sync reads the entry's
    state from Clockify, not from the event), dropping a real revert would lose it until the next sweep.
    So only a replay of the latest state is recognised; this one is kept, and its own replay is not."""
    first, second = clockify_entry(description="A"), clockify_entry(description="B")
    assert post(served, first, delivery="d-a") == "stored"
    assert post(served, second, delivery="d-b") == "stored"
    assert post(served, first, delivery="d-a2") == "stored"
    assert post(served, first, delivery="d-a3") == "duplicate"
    assert post(served, first, delivery="d-a") == "duplicate"  # the first delivery's own id, again
    assert len(inbox(warehouse)) == 3
