"""What both accounting APIs' hooks share on the wire: exact money in JSON, tolerant body parsing, backoff."""

from __future__ import annotations

import random
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import requests


def jsonable(value: Any) -> Any:
    """Decimals go out as JSON numbers with their exact digits (money is never a float in closeout)."""
    if isinstance(value, Decimal):
        return ExactNumber(value)
    if isinstance(value, Mapping):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


class ExactNumber(float):
    """A float whose JSON text is the Decimal's own digits (``json`` writes floats with ``float.__repr__``; money
    here has at most a few decimals, whose shortest float repr is those same digits - checked, never assumed)."""

    def __new__(cls, value: Decimal) -> ExactNumber:
        number = super().__new__(cls, value)
        if Decimal(repr(number)) != value:
            raise ValueError(f"amount {value} cannot be written exactly as a JSON number")
        return number


def json_body(response: requests.Response) -> Any:
    """The answer as JSON with Decimal numbers; ``{}`` when it is not JSON."""
    try:
        return response.json(parse_float=Decimal)
    except ValueError:
        return {}


def retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def backoff(attempt: int, *, base: float = 0.5, cap: float = 30.0) -> float:
    """Full-jitter exponential backoff, so parallel workers do not retry in step."""
    return random.uniform(base / 2, min(cap, base * 2 ** (attempt - 1)))
