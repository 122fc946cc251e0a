"""The Airflow notifiers every closeout task carries (``closeout.dag_defaults.default_args``).

Imported at DAG parse time, so Airflow's task SDK only: the work (warehouse, SMTP, HTTP) is imported
when a callback runs, in the worker, after the task finished.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseNotifier


class FailureNotifier(BaseNotifier):
    """``on_failure_callback``: the platform team hears of every failure, finance of money DAGs' failures,
    once per new cause (``closeout.alerts.notify``)."""

    def notify(self, context: Any) -> None:
        from closeout.alerts.notify import notify_failure

        notify_failure(context)


class CauseResolver(BaseNotifier):
    """``on_success_callback``: a task that succeeds resolves its open failure causes, so the same failure
    later alerts again."""

    def notify(self, context: Any) -> None:
        from closeout.alerts.notify import resolve_on_success

        resolve_on_success(context)
