"""The cause of a task failure as a stable fingerprint, so the same failure alerts once.

A cause is the DAG, the task, the exception type (with the types it was raised from) and the exception
message with what changes from run to run taken out: Airflow run ids, reconciliation run ids, UUIDs,
timestamps, memory addresses and plain numbers (counts, row and hold ids, amounts) become placeholders.
Dates and periods (``2026-10``, ``2026-10-31``) stay: a failure for another period is another cause, and
so are other object ids (``inv_...``): another invoice failing is news.
"""

from __future__ import annotations

import hashlib
import re

_MAX_MESSAGE = 2000
# Order matters: the wider shapes are replaced before the numbers inside them.
_RUN_ID = re.compile(r"\b(?:manual|scheduled|backfill|dataset_triggered|asset_triggered)__[^\s,;)]+")
_COMPACT_STAMP_ID = re.compile(r"\b\w*\d{8}T\d{4,6}\w*")
_UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
_TIMESTAMP = re.compile(
    r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2}|\s?UTC)?"
)
_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]+\b")
_DATE_OR_PERIOD = re.compile(r"\b\d{4}-\d{2}(?:-\d{2})?\b")
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:[.,]\d+)*(?![\w])")
_SPACE = re.compile(r"\s+")


def normalise(message: str) -> str:
    """The message with run-specific parts replaced; dates and periods kept."""
    text = _SPACE.sub(" ", message or "").strip()[:_MAX_MESSAGE]
    for pattern, placeholder in ((_RUN_ID, "<run>"), (_COMPACT_STAMP_ID, "<run>"), (_UUID, "<uuid>"),
                                 (_TIMESTAMP, "<time>"), (_ADDRESS, "<addr>")):  # fmt: skip
        text = pattern.sub(placeholder, text)
    kept: list[str] = []

    def keep(match: re.Match[str]) -> str:
        kept.append(match.group(0))
        return chr(0xE000 + len(kept) - 1)  # a private-use character: no digit for _NUMBER to see

    text = _DATE_OR_PERIOD.sub(keep, text)
    text = _NUMBER.sub("#", text)
    return re.sub("[\ue000-\uf8ff]", lambda m: kept[ord(m.group(0)) - 0xE000], text)


def exception_type(exception: BaseException | None) -> str:
    """``AirflowFailException <- PublicationsStopped``: the raised type and the ones it was raised from."""
    names: list[str] = []
    while exception is not None and len(names) < 4:
        names.append(type(exception).__name__)
        exception = exception.__cause__
    return " <- ".join(names) or "unknown"


def fingerprint(dag_id: str, task_id: str, exc_type: str, normalised_message: str) -> str:
    body = "\x1f".join((dag_id, task_id, exc_type, normalised_message))
    return hashlib.sha256(body.encode()).hexdigest()
