"""What a failing task tells its failure notifier through the exception it raises.

* ``FinanceAlerted``: a mixin for exceptions raised *after* finance was told about the failure by a more
  specific alert (the payout gate's hold alert on a reconciliation breach). The notifier then alerts the
  platform team only, so finance does not get the same news twice.
* ``alert_facts``: an optional mapping on any exception, set with ``with_facts``, that the alert shows:
  ``period``, ``objects`` (ids concerned), ``counts``, ``amounts`` (per currency code, keys ending in
  ``_minor`` are integer minor units and are shown in major units too), ``evidence`` (where to look) and
  ``report_url``. Unknown keys are shown as they are. Never put secrets in them.

Standard library only: raising code imports this without Airflow.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

E = TypeVar("E", bound=BaseException)
FACT_KEYS = ("period", "objects", "counts", "amounts", "evidence", "report_url")


class FinanceAlerted:
    """Mixin: finance already has an alert for this failure; the notifier tells the platform team only."""

    finance_alerted = True


def finance_alerted(exception: BaseException | None) -> bool:
    """True when the exception, or one it was raised from (a step wrapping the reconcile's), carries the marker."""
    seen = 0
    while exception is not None and seen < 5:
        if getattr(exception, "finance_alerted", False):
            return True
        exception, seen = exception.__cause__, seen + 1
    return False


def with_facts(exception: E, **facts: Any) -> E:
    """Attach facts for the failure alert (merged with any already there) and return the exception:
    ``raise with_facts(PublishIncomplete(...), objects=[...], counts={"invoices": 3})``."""
    merged = dict(facts_of(exception))
    merged.update({k: v for k, v in facts.items() if v is not None})
    exception.alert_facts = merged  # type: ignore[attr-defined]
    return exception


def facts_of(exception: BaseException | None) -> Mapping[str, Any]:
    """The facts of the exception or, failing that, of the one it was raised from."""
    seen = 0
    while exception is not None and seen < 5:
        facts = getattr(exception, "alert_facts", None)
        if isinstance(facts, Mapping):
            return facts
        exception, seen = exception.__cause__, seen + 1
    return {}
