"""Who approves a payout batch, what they are shown, and how their answer is recorded (invariant 11).

The approval is Airflow's human-in-the-loop ``ApprovalOperator``, assigned at run time to the finance group
(``CLOSEOUT_FINANCE_APPROVERS``, Airflow user ids, comma separated) less the person who triggered the run: the
API server answers 403 to anyone else. The answer is checked again when the task resumes (an auth manager may
let admins answer any task): an answer by the requester or by someone outside the group is refused, recorded in
``closeout.decisions`` and fails the task, so nothing is released. Approvals and rejections are recorded there
too, through ``closeout_data.record_payout_decision`` (the pipeline's role may not write decisions directly).

Switching the approval off is a deployment setting (env ``CLOSEOUT_PAYOUTS_APPROVAL=off``), never a trigger
parameter: whoever triggers a run would otherwise choose whether it needs someone else's approval.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the DAG file imports this module at parse time: nothing heavy at import
    import psycopg

APPROVERS_ENV = "CLOSEOUT_FINANCE_APPROVERS"
APPROVAL_ENV = "CLOSEOUT_PAYOUTS_APPROVAL"
RESPONSE_ENV = "CLOSEOUT_APPROVAL_RESPONSE_HOURS"
DEFAULT_RESPONSE_HOURS = 24  # a business day: an approval nobody answers fails and alerts, it never waits forever
SWITCHED_OFF_BY = "auto: approval switched off"  # batches' approved_by when the deployment switched it off
SCHEDULE_REQUESTER = "schedule"
BODY_PAYEE_LINES = 60


class ApprovalRefused(RuntimeError):
    """The answer may not count: the requester approved their own run, or the answerer is not in finance."""


def response_timeout() -> timedelta:
    """How long a finance approval waits for an answer (``CLOSEOUT_APPROVAL_RESPONSE_HOURS``, default 24). When it
    runs out the task fails, which alerts like any failure; nothing is approved by default."""
    raw = os.environ.get(RESPONSE_ENV, "").strip()
    if not raw:
        return timedelta(hours=DEFAULT_RESPONSE_HOURS)
    try:
        hours = float(raw)
    except ValueError:
        raise ValueError(f"{RESPONSE_ENV}={raw!r}: a number of hours") from None
    if not 0 < hours <= 24 * 31:
        raise ValueError(f"{RESPONSE_ENV}={raw!r}: must be more than 0 and at most 744 hours (31 days)")
    return timedelta(hours=hours)


def approval_required() -> bool:
    """The deployment's setting (env CLOSEOUT_PAYOUTS_APPROVAL, default on); read at run time."""
    return os.environ.get(APPROVAL_ENV, "on").strip().lower() not in {"off", "false", "0", "no"}


def approval_setting() -> str:
    """What a run records about the switch: ``required`` or ``off (CLOSEOUT_PAYOUTS_APPROVAL=<value>)``."""
    return "required" if approval_required() else f"off ({APPROVAL_ENV}={os.environ.get(APPROVAL_ENV)})"


def finance_approvers() -> list[str]:
    """The configured finance group (Airflow user ids), read at run time, order kept, duplicates dropped."""
    raw = os.environ.get(APPROVERS_ENV, "")
    return list(dict.fromkeys(u.strip() for u in raw.replace(";", ",").split(",") if u.strip()))


def requester(dag_run: Any) -> str:
    """Who asked for this run: Airflow's triggering user, or ``schedule`` for a scheduled run."""
    name = getattr(dag_run, "triggering_user_name", None)
    return str(name) if name else SCHEDULE_REQUESTER


def assignees(requested_by: str) -> list[str]:
    """The finance approvers other than the requester; an empty list means no one may approve this run."""
    if not finance_approvers():
        raise ApprovalRefused(f"payout approval is required but {APPROVERS_ENV} names no finance approver")
    others = [u for u in finance_approvers() if u.lower() != requested_by.lower()]
    if not others:
        raise ApprovalRefused(
            f"the only finance approver configured ({requested_by}) triggered this run and cannot approve it; "
            f"add another user to {APPROVERS_ENV}"
        )
    return others


def check_answer(requested_by: str, responded_by: str | None) -> None:
    """Refuse an answer that cannot count (raises ApprovalRefused)."""
    who = (responded_by or "").strip()
    if not who:
        raise ApprovalRefused("the answer names no user")
    if who.lower() == requested_by.lower():
        raise ApprovalRefused(f"{who} triggered this run and cannot approve it (invariant 11)")
    if who.lower() not in {u.lower() for u in finance_approvers()}:
        raise ApprovalRefused(f"{who} is not a finance approver ({APPROVERS_ENV})")


def record(
    conn: psycopg.Connection,
    batch_ids: list[str],
    *,
    requested_by: str,
    decided_by: str,
    outcome: str,
    reason: str | None = None,
    ref: Mapping[str, Any] | None = None,
) -> int:
    """One decision per batch in closeout.decisions; approved batches are marked approved. Committed."""
    (approved,) = conn.execute(
        "SELECT closeout_data.record_payout_decision(%s, %s, %s, %s, %s, %s::jsonb)",
        (batch_ids, requested_by, decided_by, outcome, reason, json.dumps(dict(ref or {}), default=str)),
    ).fetchone()
    conn.commit()
    return int(approved or 0)


def summary(conn: psycopg.Connection, batch_ids: list[str]) -> tuple[str, str]:
    """The request's subject and body: per payee and currency the amount to transfer, and totals per currency."""
    rows = conn.execute(
        """SELECT i.payee_key, coalesce(p.name, ''), i.currency, c.exponent, count(*),
                  sum((i.request->>'amount')::bigint)::bigint
           FROM closeout_data.payout_items i
           JOIN closeout_data.currencies c ON c.code = i.currency
           LEFT JOIN closeout_data.payout_payees p ON p.payee_key = i.payee_key
           WHERE i.batch_id = ANY(%s) AND i.status = 'pending'
           GROUP BY i.payee_key, p.name, i.currency, c.exponent
           ORDER BY i.currency, i.payee_key""",
        (batch_ids,),
    ).fetchall()
    totals: dict[str, tuple[int, int, int]] = {}
    lines = []
    for n, (payee, name, currency, exponent, items, minor) in enumerate(rows):
        count, total, _ = totals.get(currency, (0, 0, exponent))
        totals[currency] = (count + items, total + minor, exponent)
        if n < BODY_PAYEE_LINES:
            label = f"{name} ({payee})" if name else payee
            lines.append(f"- {label}: {major(minor, exponent)} {currency} ({items} items)")
    if len(rows) > BODY_PAYEE_LINES:
        lines.append(f"- and {len(rows) - BODY_PAYEE_LINES} more payees: closeout.payout_items")
    total_text = ", ".join(f"{major(t, e)} {c} ({n} items)" for c, (n, t, e) in sorted(totals.items()))
    subject = f"closeout payouts: approve {len(batch_ids)} batches: {total_text or 'nothing pending'}"
    body = "\n".join([
        f"Batches awaiting approval: {', '.join(batch_ids)}.",
        "",
        f"Totals per currency: {total_text or 'nothing pending'}.",
        "",
        "Payees:",
        *lines,
        "",
        "Approve releases one Stripe transfer per item; Reject skips the release (the batches wait for the next "
        "run). The person who triggered this run cannot approve it.",
    ])  # fmt: skip
    return subject, body


def major(minor: int, exponent: int) -> str:
    """Minor units as a major-unit string, exactly (no float)."""
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(int(minor)), 10**exponent)
    return f"{sign}{whole}.{frac:0{exponent}d}" if exponent else f"{sign}{whole}"
