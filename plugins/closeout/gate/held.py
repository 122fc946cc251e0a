"""The exception a reconcile raises after the gate has held payouts and alerted finance.

It fails the task without retries (the verdict stands until the data changes) and carries the
``FinanceAlerted`` marker, so the task's failure notifier does not send finance a second alert for the
breach the gate already reported (the platform team still gets its one). Kept out of
``closeout.gate``'s own imports: importing Airflow costs a second, and the gate's CLI does not need it.
"""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowFailException

from closeout.alerts.markers import FinanceAlerted


class PayoutsHeld(FinanceAlerted, AirflowFailException):
    """Payouts are held for a reconciliation breach; finance has its alert from the gate."""
