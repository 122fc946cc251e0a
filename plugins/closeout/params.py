"""Checks of the params a person types into a manual DAG run: dates, cut-offs, periods and the import location.

The trigger form validates with JSON schema already, but a conf typed by hand (``airflow dags trigger -c``, the
REST API) or an older serialized DAG bypasses the form, and a schema cannot say "inside the import folder" or "not
in year 9999". Every check here raises ``ParamError`` whose message starts with ``parameter '<name>' = <value>``,
so the person who typed it sees which param is wrong and what is expected; tasks turn it into a failure without
retries (a retry would fail the same way). The month-end close has its own, richer checks in
``closeout.close.params`` (it also decides "the month is not over yet"); this module follows the same pattern.

The import location (``CLOSEOUT_IMPORT_URL``) confines ``closeout_migrate_history``: the worker reads exports only
under it, never an arbitrary file on the worker. A folder or an fsspec URL
(``s3://bucket/prefix``), read through the artifact store (``closeout.artifacts``: the ``closeout_artifacts``
connection's credentials); default ``imports/`` under the artifacts location (``CLOSEOUT_ARTIFACTS_URL``).
"""

from __future__ import annotations

import os
import posixpath
import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

IMPORT_ENV = "CLOSEOUT_IMPORT_URL"
ARTIFACTS_ENV = "CLOSEOUT_ARTIFACTS_URL"
IMPORTS_FOLDER = "imports"

# Dates finance could mean. Outside this range a typo (0024-01-01, 20245-01-01) or a hostile value (9999-12-31)
# would silently select nothing or everything.
EARLIEST = date(2000, 1, 1)
LATEST = date(2099, 12, 31)
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # ASCII digits only (\d also matches e.g. full-width ones)
_ISO_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?)?"
                            r"(Z|[+-][0-9]{2}:?[0-9]{2})?")  # fmt: skip


class ParamError(AirflowFailException, ValueError):
    """A manual run's param is malformed or out of bounds; the message names the param. An
    ``AirflowFailException``: the task fails at once, as retrying the same input would fail the same way."""

    def __init__(self, name: str, value: Any, problem: str) -> None:
        self.param, self.value, self.problem = name, value, problem
        super().__init__(f"parameter {name!r} = {_shown(value)}: {problem}")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "...'"


def _in_range(name: str, raw: Any, day: date) -> date:
    if not EARLIEST <= day <= LATEST:
        raise ParamError(name, raw, f"{day.isoformat()} is outside {EARLIEST.isoformat()} .. {LATEST.isoformat()}")
    return day


def date_param(name: str, value: Any, *, required: bool = False) -> date | None:
    """``YYYY-MM-DD`` (a real day between 2000 and 2099); empty or None is None unless ``required``."""
    if value is None or value == "":
        if required:
            raise ParamError(name, value, "required: a date YYYY-MM-DD")
        return None
    if isinstance(value, datetime):
        raise ParamError(name, value, "expected a date YYYY-MM-DD, not a timestamp")
    if isinstance(value, date):
        return _in_range(name, value, value)
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        raise ParamError(name, value, "expected a date YYYY-MM-DD (e.g. 2026-10-31)")
    try:
        day = date.fromisoformat(value)
    except ValueError as exc:
        raise ParamError(name, value, f"not a calendar day ({exc})") from None
    return _in_range(name, value, day)


def timestamp_param(name: str, value: Any) -> datetime | None:
    """An ISO 8601 date or timestamp (naive ones are UTC), between 2000 and 2099; empty or None is None."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        when = value
    elif not isinstance(value, str) or not _ISO_TIMESTAMP.fullmatch(value.strip()):
        raise ParamError(name, value, "expected an ISO timestamp, e.g. 2026-10-31T23:59:59Z or 2026-10-31")
    else:
        try:
            when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise ParamError(name, value, f"not a real time ({exc})") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    _in_range(name, value, when.astimezone(UTC).date())
    return when


def period_param(name: str, value: Any, *, required: bool = False) -> str | None:
    """A month ``YYYY-MM`` (``closeout.billing.periods.parse_period``); empty or None is None unless ``required``."""
    from closeout.billing.periods import PeriodError, parse_period

    if value is None or value == "":
        if required:
            raise ParamError(name, value, "required: a month YYYY-MM")
        return None
    try:
        period = parse_period(value)
    except PeriodError as exc:
        raise ParamError(name, value, str(exc)) from None
    _in_range(name, value, period.start)
    return period.label


def cutoff_param(name: str, value: Any) -> str:
    """The history import's cut-off: ``auto``, ``none`` or a date; returned as text ``run_import`` reads."""
    if value in (None, "", "none"):
        return "none"
    if value == "auto":
        return "auto"
    if isinstance(value, str) and value.strip().lower() in ("auto", "none"):
        return value.strip().lower()
    day = date_param(name, value, required=True)
    assert day is not None
    return day.isoformat()


# -- the import location ---------------------------------------------------------------------------------------
def import_location() -> str:
    """Where history exports may be read from: ``CLOSEOUT_IMPORT_URL``, else ``<artifacts>/imports``."""
    configured = os.environ.get(IMPORT_ENV, "").strip()
    if configured:
        return configured
    from closeout import artifacts  # under the artifact store (CLOSEOUT_ARTIFACTS_URL, local default for the demo)

    return artifacts.path(IMPORTS_FOLDER)


def _is_url(text: str) -> bool:
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text))


def _local_base(location: str) -> Path:
    text = location[len("file://") :] if location.startswith("file://") else location
    return Path(text).expanduser().resolve()


def confined_path(name: str, value: Any, *, location: str | None = None) -> Path | Any:
    """The file or folder ``value`` names, proven to lie inside the import location, else ParamError.

    ``value`` is relative to the location (``harvest/2024.csv``), or absolute / a URL that starts with it. Refused:
    ``..`` segments, NUL and control characters, another scheme or bucket, an absolute path outside, and (local)
    a symlink whose target is outside. Returns a ``pathlib.Path`` for a local location, else a
    ``closeout.artifacts.StoredPath`` (read through the artifact store's filesystem)."""
    base_text = (location or import_location()).strip()
    if not isinstance(value, str) or not value.strip():
        raise ParamError(name, value, f"name a CSV file or folder inside the import location {base_text}")
    text = value.strip()
    if any(ord(c) < 32 or c == "\x7f" for c in text):
        raise ParamError(name, value, "control characters are not allowed in a path")
    if ".." in re.split(r"[\\/]", text):
        raise ParamError(name, value, f"'..' is not allowed: name a file inside the import location {base_text}")
    if _is_url(base_text) and not base_text.startswith("file://"):
        return _confined_remote(name, value, text, base_text)
    base = _local_base(base_text)
    if _is_url(text) and not text.startswith("file://"):
        raise ParamError(name, value, f"only files inside the import location {base} may be read")
    candidate_text = text[len("file://") :] if text.startswith("file://") else text
    candidate = Path(candidate_text).expanduser()
    if not candidate.is_absolute():
        candidate = base / candidate
    resolved = candidate.resolve()
    if _within(resolved, base):
        return resolved
    written = Path(base_text[len("file://") :] if base_text.startswith("file://") else base_text).expanduser()
    if _within(candidate.absolute(), base) or _within(candidate.absolute(), written.absolute()):
        raise ParamError(name, value, f"a link that leads outside the import location {base}")
    raise ParamError(name, value, f"outside the import location {base} (set {IMPORT_ENV} to change it)")


def _within(path: Path, base: Path) -> bool:
    return path == base or base in path.parents


def _confined_remote(name: str, value: Any, text: str, base_text: str) -> Any:
    # read through the artifact store's filesystem (closeout_artifacts credentials; s3:// without Amazon provider)
    from closeout.artifacts import stored_path

    base = base_text.rstrip("/")
    scheme, _, rest = base.partition("://")
    if _is_url(text):
        other_scheme, _, other_rest = text.partition("://")
        if other_scheme.lower() != scheme.lower():
            raise ParamError(name, value, f"scheme {other_scheme}:// is not the import location's ({base})")
        key = posixpath.normpath("/" + other_rest)
        prefix = posixpath.normpath("/" + rest)
        if not (key == prefix or key.startswith(prefix.rstrip("/") + "/")):
            raise ParamError(name, value, f"outside the import location {base}")
        return stored_path(f"{scheme}://{key.lstrip('/')}")
    if text.startswith(("/", "\\")):
        raise ParamError(name, value, f"an absolute path on the worker; name a file inside the import location {base}")
    key = posixpath.normpath(text)
    return stored_path(f"{base}/{key}")


def confined_files(name: str, value: Any, *, location: str | None = None) -> list[Any]:
    """The CSV files ``value`` names (a file, or every ``*.csv`` of a folder, sorted), each inside the import
    location - a folder's entry that is a link leading outside is refused, not skipped."""
    target = confined_path(name, value, location=location)
    base_text = (location or import_location()).strip()
    local = isinstance(target, Path)
    if target.is_dir():
        files = sorted((p for p in target.iterdir() if p.name.lower().endswith(".csv")), key=lambda p: p.name)
        if local:
            base = _local_base(base_text)
            for entry in files:
                if not _within(entry.resolve(), base):
                    raise ParamError(name, value, f"{entry.name} is a link that leads outside the import location "
                                                  f"{base}")  # fmt: skip
            files = [p.resolve() for p in files if p.resolve().is_file()]
    elif target.is_file():
        files = [target]
    else:
        raise ParamError(name, value, f"no file or folder there (inside the import location {base_text})")
    if not files:
        raise ParamError(name, value, "no .csv files in that folder")
    return files
