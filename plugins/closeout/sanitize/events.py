"""Events into the warehouse one by one in judgement, all at once in SQL: Stripe's inbox and backfill.

A Stripe event is stored in ``stripe_events.body`` (jsonb) and later cast and applied. Before this
module, one event with ``\\u0000`` in any string, a lone surrogate, a ``1e-100000``, an integer beyond
bigint or ``created`` in year 9999 failed the set-based insert of its whole inbox batch or backfill page,
on every run after it: nothing more was ever ingested. Now every event is judged first (``vet_stripe_event``):

* the envelope must be an event: ``id`` (``evt_...``), ``type``, ``created`` within 2000..2100,
  ``data.object`` an object;
* identities (ids, types, ``object``, currencies, statuses) holding a NUL or a lone surrogate, any number
  Postgres or closeout cannot hold, and keys Postgres refuses quarantine the event with the path and the
  reason (``closeout.event_quarantine``);
* other text (descriptions, names, metadata values) is stored cleaned (U+FFFD) and the change recorded
  in ``closeout.input_repairs``.

The good events then go in with one statement, as before. Duplicate event ids in one batch keep one
deterministic copy (the largest body hash; Stripe events never change, so copies are normally equal)
and are counted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from decimal import Decimal
from typing import Any

import msgspec
import psycopg

from closeout.paths import load_sql
from closeout.sanitize.values import escape_text, plausible_epoch, printable_raw, text_problem, vet_json

MAX_ID_CHARS = 255
INBOX_BATCH = 5000
_DECODER = msgspec.json.Decoder(float_hook=Decimal)
_ENCODER = msgspec.json.Encoder(decimal_format="number")
_IDENTITY_KEYS = frozenset({"id", "object", "type", "currency", "status", "customer", "invoice", "charge",
                            "payment_intent", "subscription", "payout", "balance_transaction", "source",
                            "transfer", "refund", "dispute", "credit_note", "account", "destination"})  # fmt: skip


def _is_identity(key: str) -> bool:
    return key in _IDENTITY_KEYS or key.endswith("_id")


def decode_json(body: str | bytes) -> Any:
    """Any JSON text with every fraction an exact Decimal. msgspec first (fast); it refuses lone surrogates
    and NaN, which the standard parser reads (``Decimal('NaN')``), so that the vetting can name them."""
    try:
        return _DECODER.decode(body)
    except msgspec.DecodeError:
        text = body.decode("utf-8", errors="surrogateescape") if isinstance(body, bytes) else body
        return json.loads(text, parse_float=Decimal, parse_constant=Decimal)


@dataclass
class Verdict:
    """One event judged: ``body`` (cleaned, storable) when ``reason`` is None, else why it is quarantined."""

    raw: Any
    event_id: str | None = None
    event_type: str | None = None
    created: int | None = None
    body: dict[str, Any] | None = None
    field: str | None = None
    reason: str | None = None
    repairs: list[tuple[str, str]] = dc_field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.reason is None


def vet_stripe_event(raw: Any) -> Verdict:
    """Judge one decoded Stripe event (see the module docstring for the rules)."""
    verdict = Verdict(raw)
    if not isinstance(raw, dict):
        return _refuse(verdict, "(event)", f"not an object: {type(raw).__name__}")
    event_id, etype, created, data = raw.get("id"), raw.get("type"), raw.get("created"), raw.get("data")
    if isinstance(event_id, str) and text_problem(event_id) is None:
        verdict.event_id = event_id
    if isinstance(etype, str) and text_problem(etype) is None:
        verdict.event_type = etype
    if not isinstance(event_id, str) or not event_id.startswith("evt_") or not 4 < len(event_id) <= MAX_ID_CHARS:
        return _refuse(verdict, "id", f"not a Stripe event id: {escape_text(repr(event_id))[:80]}")
    if text_problem(event_id):
        return _refuse(verdict, "id", text_problem(event_id) or "")
    if not isinstance(etype, str) or not etype or len(etype) > MAX_ID_CHARS:
        return _refuse(verdict, "type", f"not an event type: {escape_text(repr(etype))[:80]}")
    absurd = plausible_epoch(created)
    if absurd is not None:
        return _refuse(verdict, "created", absurd)
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        return _refuse(verdict, "data.object", "missing or not an object")
    shape = _object_shape(data["object"])
    if shape is not None:
        return _refuse(verdict, f"data.object.{shape[0]}", shape[1])
    checked = vet_json(raw, _is_identity)
    if checked.reason is not None:
        return _refuse(verdict, checked.path or "(event)", checked.reason)
    verdict.created = created
    verdict.body = checked.value
    verdict.repairs = checked.repairs
    return verdict


# The object fields the apply and cash steps read with a type in mind: a Stripe object always has these
# as text ids and integer amounts or epoch seconds (events never expand objects).
_TEXT_FIELDS = ("id", "object", "invoice", "charge", "customer", "currency", "status", "payment_intent")
_INTEGER_FIELDS = ("amount", "amount_paid", "amount_refunded", "amount_due", "amount_remaining", "total",
                   "subtotal", "fee", "net", "created", "arrival_date", "available_on")  # fmt: skip
_EPOCH_FIELDS = ("created",)


def _object_shape(obj: dict[str, Any]) -> tuple[str, str] | None:
    for name in _TEXT_FIELDS:
        value = obj.get(name)
        if value is not None and not (isinstance(value, str) and len(value) <= MAX_ID_CHARS):
            return name, f"not a Stripe id or code: {escape_text(repr(value))[:80]}"
    for name in _INTEGER_FIELDS:
        value = obj.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            return name, f"not an integer: {escape_text(repr(value))[:80]}"
    for name in _EPOCH_FIELDS:
        if obj.get(name) is not None and plausible_epoch(obj[name]) is not None:
            return name, plausible_epoch(obj[name]) or ""
    return None


def _refuse(verdict: Verdict, where: str, reason: str) -> Verdict:
    verdict.field, verdict.reason = where, reason
    return verdict


def body_hash(raw: Any) -> str:
    return hashlib.sha256(printable_raw(raw).encode()).hexdigest()


def one_per_id(verdicts: Iterable[Verdict]) -> tuple[list[Verdict], int]:
    """Good events, one per id (the largest body hash wins: the same choice whatever the order), and how many
    copies were dropped."""
    kept: dict[str, tuple[str, Verdict]] = {}
    total = 0
    for verdict in verdicts:
        total += 1
        assert verdict.event_id is not None
        key = body_hash(verdict.body)
        current = kept.get(verdict.event_id)
        if current is None or key > current[0]:
            kept[verdict.event_id] = (key, verdict)
    return [v for _k, v in kept.values()], total - len(kept)


# -- writing ----------------------------------------------------------------------------------------------
_INSERT_EVENTS = """
INSERT INTO closeout_data.stripe_events (event_id, event_type, created_at, object_type, object_id, body,
    received_via)
SELECT e ->> 'id', e ->> 'type', to_timestamp((e ->> 'created')::bigint),
       e -> 'data' -> 'object' ->> 'object', e -> 'data' -> 'object' ->> 'id', e, %(via)s
FROM jsonb_array_elements(%(events)s::jsonb) AS e
ON CONFLICT (event_id) DO NOTHING"""


# What Postgres (or psycopg, before sending) refuses about a value, as opposed to the warehouse being down.
_REFUSALS = (psycopg.DataError, psycopg.errors.InvalidTextRepresentation, UnicodeEncodeError)


@dataclass
class Stored:
    new: int = 0
    quarantined: int = 0
    duplicates: int = 0
    repaired: int = 0
    newest: int | None = None  # the latest ``created`` among the events stored (never a quarantined one)
    reasons: dict[int, str] = dc_field(default_factory=dict)  # inbox_id -> why it was quarantined


def store_events(conn: psycopg.Connection, verdicts: Sequence[Verdict], *, via: str,
                 inbox_ids: Sequence[int | None] | None = None) -> Stored:  # fmt: skip
    """Insert the good events in one statement, quarantine the others, record the repairs.

    Should Postgres refuse the batch anyway (a rule this module does not know yet), each event is tried
    under its own savepoint and only the refused ones are quarantined, with Postgres' reason."""
    ids = list(inbox_ids) if inbox_ids is not None else [None] * len(verdicts)
    out = Stored()
    good = [(v, i) for v, i in zip(verdicts, ids, strict=True) if v.ok]
    bad = [(v, i) for v, i in zip(verdicts, ids, strict=True) if not v.ok]
    unique, out.duplicates = one_per_id(v for v, _i in good)
    try:
        with conn.transaction():
            out.new = _insert(conn, unique, via)
    except _REFUSALS:
        out.new = 0
        for verdict in unique:
            try:
                with conn.transaction():
                    out.new += _insert(conn, [verdict], via)
            except _REFUSALS as exc:
                _refuse(verdict, "(event)", f"refused by the warehouse: {type(exc).__name__}: "
                                            f"{escape_text(str(exc))[:300]}")  # fmt: skip
                bad.append((verdict, next((i for v, i in good if v is verdict), None)))
    stored = [v for v in unique if v.ok]
    out.newest = max((v.created for v in stored if v.created is not None), default=None)
    if bad:
        quarantine_events(conn, "stripe", [v for v, _i in bad], via=via, inbox_ids=[i for _v, i in bad])
        out.quarantined = len(bad)
        out.reasons = {i: f"{v.field}: {v.reason}" for v, i in bad if i is not None}
    repairs = [(v.event_id, path, note) for v in stored for path, note in v.repairs]
    if repairs:
        with conn.cursor() as cur:
            cur.executemany(load_sql("sync/record_repair.sql"),
                            [{"source": "stripe", "entity": "event", "source_id": eid, "field": escape_text(path),
                              "change": note, "sync_run_id": None} for eid, path, note in repairs])  # fmt: skip
        out.repaired = len(repairs)
    return out


def _insert(conn: psycopg.Connection, verdicts: Sequence[Verdict], via: str) -> int:
    if not verdicts:
        return 0
    events = _ENCODER.encode([v.body for v in verdicts]).decode()
    return conn.execute(_INSERT_EVENTS, {"events": events, "via": via}).rowcount


def quarantine_events(conn: psycopg.Connection, vendor: str, verdicts: Sequence[Verdict], *, via: str,
                      inbox_ids: Sequence[int | None]) -> None:  # fmt: skip
    """One quarantine row per distinct refused event and reason (every text escaped: it must store)."""
    params = []
    for verdict, inbox_id in zip(verdicts, inbox_ids, strict=True):
        raw = printable_raw(verdict.raw)
        params.append({
            "vendor": vendor, "event_id": escape_text(verdict.event_id)[:MAX_ID_CHARS] if verdict.event_id else
            _raw_id(verdict.raw), "event_type": escape_text(verdict.event_type)[:MAX_ID_CHARS] if verdict.event_type
            else None, "received_via": via, "field": escape_text(verdict.field or "(event)"),
            "reason": escape_text(verdict.reason or "refused"), "raw": raw,
            "raw_hash": hashlib.sha256(raw.encode()).hexdigest(), "inbox_id": inbox_id,
        })  # fmt: skip
    with conn.cursor() as cur:
        cur.executemany(load_sql("sync/quarantine_event.sql"), params)


def _raw_id(raw: Any) -> str | None:
    """The event's id as sent, escaped, for finding it again (even when the id itself is the poison)."""
    if isinstance(raw, dict) and isinstance(raw.get("id"), str | int) and not isinstance(raw.get("id"), bool):
        return escape_text(str(raw["id"]))[:MAX_ID_CHARS]
    return None


# -- the two ways Stripe events arrive ------------------------------------------------------------------------
def ingest_stripe_inbox(conn: psycopg.Connection) -> dict[str, int]:
    """Move the Stripe events the receiver stored into ``stripe_events``; quarantine the ones Postgres or
    closeout cannot take, each by itself. Every inbox row ends processed with its outcome. Batches of
    ``INBOX_BATCH`` rows, each committed: a backlog never has to fit in memory at once."""
    totals = {"inbox": 0, "new": 0, "quarantined": 0, "duplicates": 0}
    after = 0
    while True:
        rows = conn.execute(
            """SELECT inbox_id, body FROM closeout_data.webhook_inbox
               WHERE vendor = 'stripe' AND processed_at IS NULL AND inbox_id > %s ORDER BY inbox_id LIMIT %s""",
            (after, INBOX_BATCH),
        ).fetchall()
        if not rows:
            return totals
        after = rows[-1][0]
        verdicts = [_judge_text(body) for _inbox_id, body in rows]
        inbox_ids = [inbox_id for inbox_id, _body in rows]
        stored = store_events(conn, verdicts, via="webhook", inbox_ids=inbox_ids)
        outcomes = [f"quarantined: {stored.reasons[i]}"[:500] if i in stored.reasons else "moved to stripe_events"
                    for i in inbox_ids]  # fmt: skip
        conn.execute(
            """UPDATE closeout_data.webhook_inbox i SET processed_at = clock_timestamp(), outcome = o.outcome
               FROM unnest(%s::bigint[], %s::text[]) AS o(inbox_id, outcome) WHERE i.inbox_id = o.inbox_id""",
            (inbox_ids, [escape_text(o) for o in outcomes]),
        )
        conn.commit()
        for key, value in (("inbox", len(rows)), ("new", stored.new), ("quarantined", stored.quarantined),
                           ("duplicates", stored.duplicates)):  # fmt: skip
            totals[key] += value


def _judge_text(body: str) -> Verdict:
    try:
        raw = decode_json(body)
    except (ValueError, RecursionError) as exc:
        return Verdict(body, field="(body)", reason=f"not a JSON document: {escape_text(str(exc))[:200]}")
    return vet_stripe_event(raw)


def store_backfill_page(conn: psycopg.Connection, body: str) -> Stored:
    """One ``/v1/events`` page as Stripe sent it: judge each event, store the good ones in one statement.
    A page whose body is not JSON at all quarantines as one record and the listing goes on."""
    try:
        page = decode_json(body)
        events = page["data"]
        if not isinstance(events, list):
            raise TypeError("data is not a list")
    except (ValueError, RecursionError, KeyError, TypeError) as exc:
        verdict = Verdict(body, field="(page)", reason=f"not an event list: {escape_text(str(exc))[:200]}")
        quarantine_events(conn, "stripe", [verdict], via="backfill", inbox_ids=[None])
        return Stored(quarantined=1)
    return store_events(conn, [vet_stripe_event(e) for e in events], via="backfill")
