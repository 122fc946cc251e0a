"""Stripe API v1 wire format: form-encoded parameters in, JSON and Stripe-shaped errors out.

Requests carry ``application/x-www-form-urlencoded`` bodies (GET and DELETE: the query string) with bracketed
keys: ``metadata[k]=v``, ``lines[0][amount]=100``, ``expand[]=customer``. :func:`parse_params` turns them into
nested dicts (a ``[]`` takes the next free index), and the ``param_*`` helpers read typed values out of them,
raising :class:`ApiError` with Stripe's codes (``parameter_missing``, ``parameter_unknown``, ...).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

__all__ = [
    "MAX_AMOUNT",
    "THREE_DECIMAL_CURRENCIES",
    "ZERO_DECIMAL_CURRENCIES",
    "ApiError",
    "dumps",
    "fingerprint",
    "invalid",
    "not_found",
    "parse_pairs",
    "parse_params",
]

ZERO_DECIMAL_CURRENCIES = frozenset(
    ("bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf")
)
THREE_DECIMAL_CURRENCIES = frozenset(("bhd", "jod", "kwd", "omr", "tnd"))
MAX_AMOUNT = 99_999_999  # Stripe's ceiling for one amount (eight digits)
METADATA_MAX_KEYS = 50
METADATA_MAX_KEY = 40
METADATA_MAX_VALUE = 500
_CURRENCY = re.compile(r"[a-z]{3}")
_INTEGER = re.compile(r"-?\d{1,18}")
_BRACKETS = re.compile(r"\[([^\[\]]*)\]")


class ApiError(ValueError):
    """A Stripe error response. ``saved`` is False for validation failures, which the idempotency layer
    does not store (Stripe saves a result only once an endpoint has started executing)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        saved: bool = True,
        headers: Iterable[tuple[str, str]] = (),
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.saved = saved
        self.headers = list(headers)
        self.extra = dict(extra or {})

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code is not None:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param is not None:
            error["param"] = self.param
        error.update(self.extra)
        return {"error": error}


def invalid(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    """A 400 for a request that fails validation (never saved under its idempotency key)."""
    return ApiError(400, message, param=param, code=code, saved=False)


def not_found(kind: str, ident: str, param: str = "id", *, status: int = 404) -> ApiError:
    return ApiError(status, f"No such {kind}: '{ident}'", code="resource_missing", param=param, saved=False)


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


# ---------------------------------------------------------------------------------------------- decoding


def parse_pairs(text: str) -> list[tuple[str, str]]:
    try:
        return parse_qsl(text, keep_blank_values=True, strict_parsing=False, errors="strict")
    except (ValueError, UnicodeDecodeError):
        raise invalid("The request could not be decoded as form parameters.") from None


def parse_params(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """``[("a[b][0]", "1"), ("expand[]", "x")]`` -> ``{"a": {"b": {"0": "1"}}, "expand": {"0": "x"}}``."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        cut = key.find("[")
        if cut == -1:
            name, parts = key, []
        else:
            name, rest = key[:cut], key[cut:]
            parts = _BRACKETS.findall(rest)
            if "".join(f"[{p}]" for p in parts) != rest:
                raise invalid(f"Invalid parameter name: {key}", param=key)
        if not name:
            raise invalid(f"Invalid parameter name: {key}", param=key)
        node = root
        path = [name, *parts]
        for depth, part in enumerate(path):
            if part == "":
                part = str(len(node))
            last = depth == len(path) - 1
            if last:
                if part in node:
                    raise invalid(f"Parameter {key} was given more than once", param=key)
                node[part] = value
            else:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise invalid(f"Invalid hash or array for parameter {key}", param=key)
                node = child
    return root


def fingerprint(method: str, path: str, pairs: Iterable[tuple[str, str]]) -> str:
    """What an idempotency key is bound to: the endpoint and the parameters, in any order."""
    canonical = dumps([method, path, sorted(pairs)])
    return hashlib.sha256(canonical).hexdigest()


# ---------------------------------------------------------------------------------------------- typed params


def check_known(params: Mapping[str, Any], allowed: Iterable[str]) -> None:
    known = set(allowed) | {"expand"}
    for name in params:
        if name not in known:
            raise invalid(f"Received unknown parameter: {name}", param=name, code="parameter_unknown")


def required(params: Mapping[str, Any], name: str) -> Any:
    value = params.get(name)
    if value is None or value == "":
        raise invalid(f"Missing required param: {name}.", param=name, code="parameter_missing")
    return value


def param_str(params: Mapping[str, Any], name: str, default: str | None = None, *, max_len: int = 5000) -> str | None:
    value = params.get(name)
    if value is None:
        return default
    if not isinstance(value, str):
        raise invalid(f"Invalid string: {name} must be a string", param=name, code="parameter_invalid_string")
    if len(value) > max_len:
        raise invalid(f"Invalid string: {name} is longer than {max_len} characters", param=name)
    return value


def to_int(value: Any, name: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str) or not _INTEGER.fullmatch(value):
        raise invalid(f"Invalid integer: {value!r}", param=name, code="parameter_invalid_integer")
    return int(value)


def param_int(
    params: Mapping[str, Any],
    name: str,
    default: int | None = None,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return default
    number = to_int(value, name)
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise invalid(f"Invalid {name}: must be {bounds}", param=name, code="parameter_invalid_integer")
    return number


def param_bool(params: Mapping[str, Any], name: str, default: bool | None = None) -> bool | None:
    value = params.get(name)
    if value is None or value == "":
        return default
    if value in ("true", True):
        return True
    if value in ("false", False):
        return False
    raise invalid(f"Invalid boolean: {value!r}", param=name)


def param_enum(params: Mapping[str, Any], name: str, choices: Iterable[str], default: str | None = None) -> str | None:
    value = param_str(params, name)
    if value is None or value == "":
        return default
    options = tuple(choices)
    if value not in options:
        raise invalid(f"Invalid {name}: must be one of {', '.join(options)}", param=name)
    return value


def param_dict(params: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, dict):
        raise invalid(f"Invalid object: {name} must be a hash", param=name)
    return value


def param_list(params: Mapping[str, Any], name: str) -> list[Any] | None:
    """An array parameter (``x[0]=..&x[1]=..`` or ``x[]=..``), in index order."""
    value = params.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, dict) or not all(k.isdigit() for k in value):
        raise invalid(f"Invalid array: {name} must be an array", param=name)
    return [value[k] for k in sorted(value, key=int)]


def currency(value: Any, name: str = "currency") -> str:
    if not isinstance(value, str) or not _CURRENCY.fullmatch(value):
        raise invalid(
            f"Invalid currency: {value!r}. Stripe currencies are three-letter lowercase ISO codes.",
            param=name,
            code="parameter_invalid_string",
        )
    return value


def amount(value: Any, cur: str, name: str = "amount", *, minimum: int | None = None) -> int:
    """An integer amount in minor units, checked against Stripe's limits for ``cur``."""
    number = to_int(value, name)
    if minimum is not None and number < minimum:
        raise invalid(f"Invalid {name}: must be at least {minimum}", param=name, code="amount_too_small")
    if abs(number) > MAX_AMOUNT:
        raise invalid(f"Amount must be no more than {MAX_AMOUNT}", param=name, code="amount_too_large")
    if cur in THREE_DECIMAL_CURRENCIES and number % 10:
        raise invalid(
            f"Invalid {name}: {cur.upper()} amounts must be divisible by 10 (the last decimal must be 0)",
            param=name,
            code="invalid_amount",
        )
    return number


def metadata(value: Any, current: Mapping[str, str] | None = None, name: str = "metadata") -> dict[str, str]:
    """Merge a ``metadata`` parameter into ``current``: an empty string unsets a key, ``metadata=""`` all."""
    result = dict(current or {})
    if value is None:
        return result
    if value == "":
        return {}
    if not isinstance(value, dict):
        raise invalid("Invalid hash: metadata must be a hash of strings", param=name)
    for key, item in value.items():
        if not isinstance(item, str):
            raise invalid(f"Invalid value for metadata key {key!r}: nested objects are not allowed", param=name)
        if len(key) > METADATA_MAX_KEY:
            raise invalid(f"Metadata keys can be at most {METADATA_MAX_KEY} characters: {key!r}", param=name)
        if len(item) > METADATA_MAX_VALUE:
            raise invalid(f"Metadata values can be at most {METADATA_MAX_VALUE} characters (key {key!r})", param=name)
        if item == "":
            result.pop(key, None)
        else:
            result[key] = item
    if len(result) > METADATA_MAX_KEYS:
        raise invalid(f"Metadata can have at most {METADATA_MAX_KEYS} keys", param=name)
    return result


def expand_paths(params: Mapping[str, Any]) -> list[str]:
    value = params.get("expand")
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    paths = param_list(params, "expand") or []
    if not all(isinstance(p, str) for p in paths):
        raise invalid("Invalid array: expand must be an array of strings", param="expand")
    return paths
