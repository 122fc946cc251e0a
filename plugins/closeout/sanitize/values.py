"""The value-level rules: which texts, numbers and instants Postgres (and closeout) can hold.

Everything here is pure and cheap on the common case (a regex search that finds nothing), because it
runs over every record of a million-entry sync.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

# What Postgres text and jsonb refuse: U+0000 and the UTF-16 surrogates, which are never valid on their
# own (a decoder joins a proper pair into one character, so any surrogate left in a str is lone).
_UNSAFE = re.compile("[\x00\ud800-\udfff]")
REPLACEMENT = "\ufffd"  # what a reader sees where a refused character was: visible, never silent

# Numbers: integers must fit bigint (amounts, timestamps and ids are cast to it); other numbers must be
# finite, not smaller (in magnitude, zero apart) than 1e-MAX_DECIMAL_PLACES (nothing a vendor means is),
# have fewer than MAX_INTEGER_DIGITS digits before the point and no more decimal places than Postgres
# numeric holds.
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1
MAX_DECIMAL_PLACES = 30
POSTGRES_MAX_SCALE = 16383
MAX_INTEGER_DIGITS = 18

# Instants a vendor record or event may carry. Outside this the value is a bug or an attack (year 1,
# year 9999, created = 0), and it would overflow date arithmetic downstream.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
EARLIEST_DATE, LATEST_DATE = EARLIEST.date(), LATEST.date()


def text_problem(text: str) -> str | None:
    """Why Postgres would refuse this text (naming the first offending character), or None."""
    match = _UNSAFE.search(text)
    if match is None:
        return None
    char = match.group()
    if char == "\x00":
        return f"contains a NUL character (U+0000) at position {match.start()}"
    return f"contains a lone surrogate (U+{ord(char):04X}) at position {match.start()}"


def clean_text(text: str) -> tuple[str, str | None]:
    """(text Postgres accepts, a note of what changed or None). Refused characters become U+FFFD."""
    if _UNSAFE.search(text) is None:
        return text, None
    nul = text.count("\x00")
    lone = len(_UNSAFE.findall(text)) - nul
    parts = [f"{nul} NUL character{'s' if nul != 1 else ''}"] if nul else []
    if lone:
        parts.append(f"{lone} lone surrogate{'s' if lone != 1 else ''}")
    return _UNSAFE.sub(REPLACEMENT, text), f"replaced {' and '.join(parts)} with U+FFFD"


def escape_text(text: str) -> str:
    """An audit copy of any text that Postgres accepts and a person can read: refused characters are
    written as their ``\\uXXXX`` escape, so nothing is lost or hidden."""
    if _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def printable_raw(raw: Any) -> str:
    """The record as it came, for the quarantine: JSON with every non-ASCII character escaped (so NUL and
    lone surrogates are text, not bytes), Decimals as they were written; a text body escaped."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="backslashreplace")
    if isinstance(raw, str):
        return escape_text(raw)
    try:
        return json.dumps(raw, default=str, sort_keys=True, ensure_ascii=True)
    except (TypeError, ValueError, RecursionError):
        return escape_text(repr(raw))


def number_problem(value: Any) -> str | None:
    """Why a JSON number cannot be stored or used as closeout uses numbers, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        if BIGINT_MIN <= value <= BIGINT_MAX:
            return None
        return f"integer beyond bigint ({len(str(abs(value)))} digits)"
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return f"not a finite number: {value!r}"
        return None
    if isinstance(value, Decimal):
        if not value.is_finite():
            return f"not a finite number: {value}"
        exponent = value.as_tuple().exponent
        assert isinstance(exponent, int)
        if value != 0 and value.adjusted() >= MAX_INTEGER_DIGITS:
            return f"number out of range: {_short(value)} (more than {MAX_INTEGER_DIGITS} digits)"
        if value != 0 and value.adjusted() < -MAX_DECIMAL_PLACES:
            return f"number out of range: {_short(value)} (smaller than 1e-{MAX_DECIMAL_PLACES})"
        if exponent < -POSTGRES_MAX_SCALE:
            return f"number out of range: {_short(value)} (more than {POSTGRES_MAX_SCALE} decimal places)"
        return None
    return None


def _short(value: Decimal) -> str:
    text = str(value)
    return text if len(text) <= 40 else f"{text[:20]}...{text[-12:]}"


def plausible_epoch(seconds: Any) -> str | None:
    """Why an epoch-seconds timestamp is absurd (not an integer, <= 0, before 2000 or from 2100), or None."""
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        return f"not whole epoch seconds: {_repr(seconds)}"
    if not EARLIEST.timestamp() <= seconds < LATEST.timestamp():
        return f"absurd timestamp {seconds} (outside {EARLIEST:%Y-%m-%d}..{LATEST:%Y-%m-%d})"
    return None


def plausible_instant(value: date | datetime | None) -> str | None:
    """Why a parsed date or timestamp is absurd, or None (None is not absurd, only missing)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        try:
            ok = EARLIEST <= value < LATEST if value.tzinfo else EARLIEST_DATE <= value.date() < LATEST_DATE
        except OverflowError:  # an offset that pushes year 1 or 9999 out of range
            ok = False
    else:
        ok = EARLIEST_DATE <= value < LATEST_DATE
    return None if ok else f"absurd date {value.isoformat()} (outside {EARLIEST_DATE}..{LATEST_DATE})"


def _repr(value: Any) -> str:
    return escape_text(repr(value))[:80]


# -- whole JSON documents (event bodies, reference payloads) ----------------------------------------------
@dataclass
class JsonVerdict:
    """A JSON value vetted for jsonb: ``value`` is the cleaned copy when ``reason`` is None; otherwise
    ``path`` and ``reason`` say why the document must be quarantined. ``repairs``: (path, note)."""

    value: Any = None
    path: str | None = None
    reason: str | None = None
    repairs: list[tuple[str, str]] = field(default_factory=list)


class _Refused(Exception):
    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def vet_json(document: Any, is_identity: Callable[[str], bool], *, max_depth: int = 64) -> JsonVerdict:
    """Walk a decoded JSON document: free text cleaned (noted), identities, keys and numbers that
    Postgres or closeout cannot hold refused with their path. ``is_identity(key)`` says which keys hold
    identities (ids, types, currencies), whose text is never altered."""
    verdict = JsonVerdict()
    try:
        verdict.value = _walk(document, "", "", is_identity, verdict.repairs, max_depth)
    except _Refused as exc:
        return JsonVerdict(path=exc.path or "(document)", reason=exc.reason, repairs=[])
    return verdict


def _walk(value: Any, path: str, key: str, is_identity: Callable[[str], bool], repairs: list[tuple[str, str]],
          depth: int) -> Any:  # fmt: skip
    if depth < 0:
        raise _Refused(path, "nested too deeply")
    if isinstance(value, str):
        problem = text_problem(value)
        if problem is None:
            return value
        if is_identity(key):
            raise _Refused(path, problem)
        cleaned, note = clean_text(value)
        repairs.append((path, note or problem))
        return cleaned
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for name, item in value.items():
            if not isinstance(name, str):
                raise _Refused(path, f"key is not text: {_repr(name)}")
            problem = text_problem(name)
            if problem is not None:
                raise _Refused(f"{path}.{escape_text(name)}" if path else escape_text(name), f"key {problem}")
            out[name] = _walk(item, f"{path}.{name}" if path else name, name, is_identity, repairs, depth - 1)
        return out
    if isinstance(value, list):
        return [_walk(item, f"{path}[{i}]", key, is_identity, repairs, depth - 1) for i, item in enumerate(value)]
    problem = number_problem(value)
    if problem is not None:
        raise _Refused(path, problem)
    return value


def first_problem(checks: Iterable[tuple[str, str | None]]) -> tuple[str, str] | None:
    """The first (field, reason) whose reason is not None."""
    for name, reason in checks:
        if reason is not None:
            return name, reason
    return None
