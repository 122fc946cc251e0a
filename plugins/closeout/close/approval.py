"""Held drafts in a month-end close: who approves them, what they are shown, how the decision is recorded.

A draft is *held* when its client's publish policy is ``hold`` and its current version is not approved. A close
triggered with ``publish_policy: auto`` publishes the period's held drafts only once someone in the finance group
(``CLOSEOUT_FINANCE_APPROVERS``) other than the person who triggered the close approves them, in the close's
``approve_held_drafts`` task (Airflow's Required Actions; ``closeout.close.approval_operator``). The close never
approves anything itself. Every answer is one row per draft in ``closeout.decisions`` (kind ``held_drafts``,
subject the invoice id, ``requested_by`` the close's triggering user, ``decided_by`` the responder), written through
``closeout_data.record_held_drafts_decision`` (the pipeline's role may not write decisions directly); an approval
marks exactly the version shown as approved in the same transaction, a rejection leaves the draft held.

Switching the approval off is a deployment setting (env ``CLOSEOUT_HELD_DRAFTS_APPROVAL=off``), recorded on the
close run and as ``not_required`` decisions; it is never a trigger parameter.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from closeout.paths import load_sql
from closeout.payouts.approval import major

if TYPE_CHECKING:  # the DAG file imports this module at parse time (through the operator): nothing heavy
    import psycopg

    from closeout.close.params import CloseParams

STEP = "approve_held_drafts"
APPROVAL_ENV = "CLOSEOUT_HELD_DRAFTS_APPROVAL"
SWITCHED_OFF_BY = "auto: approval switched off"
BODY_DRAFT_LINES = 60


@dataclass(frozen=True)
class HeldDraft:
    """One held draft as the approver sees it; JSON-safe, so the close run can keep the list it asked about."""

    invoice_id: str
    version: int
    client_key: str
    client_name: str
    period_start: str
    period_end: str
    currency: str
    exponent: int
    total_minor: int
    why: str

    @property
    def amount(self) -> str:
        return f"{major(self.total_minor, self.exponent)} {self.currency}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def approval_required() -> bool:
    """The deployment's setting (env CLOSEOUT_HELD_DRAFTS_APPROVAL, default on); read at run time."""
    return os.environ.get(APPROVAL_ENV, "on").strip().lower() not in {"off", "false", "0", "no"}


def approval_setting() -> str:
    """What the close run records about the switch: ``required`` or ``off (CLOSEOUT_HELD_DRAFTS_APPROVAL=...)``."""
    return "required" if approval_required() else f"off ({APPROVAL_ENV}={os.environ.get(APPROVAL_ENV)})"


def _why(version: int, approved_version: int | None, approved_by: str | None) -> str:
    if approved_version is None:
        return "client's publish policy is hold; this draft was never approved"
    return (f"client's publish policy is hold; version {approved_version} was approved by {approved_by}, "
            f"the draft has changed since (now version {version})")  # fmt: skip


def held_drafts(conn: psycopg.Connection, params: CloseParams) -> list[HeldDraft]:
    """The period's drafts held for an approval (include/sql/close/held_drafts.sql), oldest period first."""
    from psycopg.rows import dict_row

    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(load_sql("close/held_drafts.sql"),
                           {"start": params.start, "next_start": params.next_start}).fetchall()  # fmt: skip
    return [
        HeldDraft(invoice_id=r["invoice_id"], version=int(r["version"]), client_key=r["client_key"],
                  client_name=r["client_name"] or "", period_start=r["period_start"].isoformat(),
                  period_end=r["period_end"].isoformat(), currency=r["currency"], exponent=int(r["exponent"]),
                  total_minor=int(r["total_minor"]), why=_why(r["version"], r["approved_version"], r["approved_by"]))
        for r in rows
    ]  # fmt: skip


def from_dicts(rows: list[Mapping[str, Any]]) -> list[HeldDraft]:
    return [HeldDraft(**dict(r)) for r in rows]


def totals(drafts: list[HeldDraft]) -> dict[str, tuple[int, int, int]]:
    """Per currency: (drafts, total minor units, exponent)."""
    out: dict[str, tuple[int, int, int]] = {}
    for d in drafts:
        count, total, _ = out.get(d.currency, (0, 0, d.exponent))
        out[d.currency] = (count + 1, total + d.total_minor, d.exponent)
    return out


def request_text(drafts: list[HeldDraft], period: str, close_run_id: int) -> tuple[str, str]:
    """The request's subject and body: each held draft (client, period, amount, why held) and totals per currency."""
    total_text = ", ".join(f"{major(t, e)} {c} ({n} drafts)" for c, (n, t, e) in sorted(totals(drafts).items()))
    lines = []
    for d in drafts[:BODY_DRAFT_LINES]:
        client = f"{d.client_name} ({d.client_key})" if d.client_name else d.client_key
        lines.append(f"- {d.invoice_id} v{d.version}: {client}, {d.period_start} to {d.period_end}: {d.amount}; "
                     f"held because the {d.why}")  # fmt: skip
    if len(drafts) > BODY_DRAFT_LINES:
        lines.append(f"- and {len(drafts) - BODY_DRAFT_LINES} more drafts: closeout.invoices")
    subject = f"closeout close {period}: approve {len(drafts)} held drafts: {total_text}"
    body = "\n".join([
        f"The month-end close of {period} (close run {close_run_id}) found drafts held for approval.",
        "",
        f"Totals per currency: {total_text}.",
        "",
        "Held drafts:",
        *lines,
        "",
        "Approve: each draft above, at the version shown, is approved and published by this close. Reject: they stay "
        "held and unpublished; the decision is recorded against each. The person who triggered this close cannot "
        "approve it.",
    ])  # fmt: skip
    return subject, body


def record(
    conn: psycopg.Connection,
    drafts: list[HeldDraft],
    *,
    requested_by: str,
    decided_by: str,
    outcome: str,
    reason: str | None = None,
    ref: Mapping[str, Any] | None = None,
) -> dict[str, int]:
    """One decision per draft; approved (or not_required) drafts are approved at the version shown. Committed.
    Returns the decision id of each draft."""
    from closeout.billing.drafting import lock_billing

    lock_billing(conn)  # every writer of drafts is serialised, as closeout.billing.lifecycle.approve is
    payload = json.dumps([{"invoice_id": d.invoice_id, "version": d.version} for d in drafts])
    rows = conn.execute(
        "SELECT invoice_id, decision_id FROM closeout_data.record_held_drafts_decision(%s::jsonb, %s, %s, %s, %s, "
        "%s::jsonb)",
        (payload, requested_by, decided_by, outcome, reason, json.dumps(dict(ref or {}), default=str)),
    ).fetchall()
    conn.commit()
    return {invoice_id: int(decision_id) for invoice_id, decision_id in rows}
