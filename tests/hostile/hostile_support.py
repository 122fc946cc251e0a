"""Hypothesis strategies for hostile vendor input, and a JSON writer that can say anything.

Python's json cannot write ``1e-100000``, ``NaN`` as a token inside a document we control, or a lone
surrogate escape on purpose; vendors (or whoever stands between) can. ``Raw`` is a JSON token written
verbatim; strings are written with every non-ASCII character escaped, so NUL and lone surrogates arrive
as ``\\u0000`` / ``\\ud800`` escapes exactly as a JSON producer would send them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st


@dataclass(frozen=True)
class Raw:
    """A JSON token written as is (a number no float can hold, NaN, Infinity)."""

    token: str


def to_json(value: Any) -> str:
    if isinstance(value, Raw):
        return value.token
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    return json.dumps(value)  # ensure_ascii: NUL and surrogates become escapes


# Characters Postgres refuses, mixed with ordinary and non-ASCII ones.
_CHARS = ["a", "Z", "0", " ", "-", "é", "€", "\u2028", "\U0001f600", "\x00", "\ud800", "\udbff", "\udc00", "\udfff",
          "\x01", "\n", "'", '"', "\\"]  # fmt: skip
hostile_text = st.lists(st.sampled_from(_CHARS), max_size=8).map("".join)

hostile_numbers = st.sampled_from([
    Raw("1e-100000"), Raw("1e400"), Raw("-1e400"), Raw("NaN"), Raw("Infinity"), Raw("-Infinity"),
    Raw("99999999999999999999999"), Raw("-9223372036854775809"), Raw("9223372036854775807"), Raw("1E5"),
    Raw("0.25"), Raw("-1"), Raw("0"), Raw("1e-7"), Raw("0E-100000"), Raw("2.5"), Raw("24"), Raw("24.0000001"),
])  # fmt: skip

hostile_dates = st.sampled_from([
    "0001-01-01", "9999-12-31", "1999-12-31", "2024-02-30", "2024-13-01", "", "not a date", "2026-11-20",
    "0001-01-01T00:00:00Z", "9999-12-31T23:59:59-05:00", "9999-12-31T23:59:59+14:00", "2026-11-20T10:00:00",
    "2026-11-20T10:00:00Z", "2026-11-20T10:00:00+02:00", "1970-01-01T00:00:00Z",
])  # fmt: skip

hostile_scalar = st.one_of(
    hostile_text, hostile_numbers, hostile_dates, st.none(), st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70), st.builds(list), st.builds(dict),
    st.builds(lambda: [Raw("1e-100000")]),
)  # fmt: skip
# st.builds, not st.just: st.just hands out one shared object, and mutate() writes into nested dicts, so a shared
# {} once given a key (possibly itself) leaked into every later example and test (RecursionError in to_json).


def mutate(record: dict[str, Any], draw, fields: list[str]) -> dict[str, Any]:
    """The record with 0-3 of ``fields`` (dotted paths) replaced by hostile values, or removed."""
    out = json.loads(json.dumps(record, default=lambda r: {"__raw__": r.token}))  # deep copy keeping Raw
    out = _restore(out)
    for path in draw(st.lists(st.sampled_from(fields), max_size=3, unique=True)):
        value = draw(st.one_of(hostile_scalar, st.just(_DELETE)))
        _set(out, path.split("."), value)
    return out


_DELETE = object()


def _restore(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__raw__"}:
            return Raw(value["__raw__"])
        return {k: _restore(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore(v) for v in value]
    return value


def _set(obj: Any, path: list[str], value: Any) -> None:
    for key in path[:-1]:
        if not isinstance(obj, dict) or not isinstance(obj.get(key), dict):
            return
        obj = obj[key]
    if isinstance(obj, dict):
        if value is _DELETE:
            obj.pop(path[-1], None)
        else:
            obj[path[-1]] = value
