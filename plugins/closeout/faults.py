"""Named crash points: kill this worker process, on purpose, where a crash hurts most.

Every step that writes outside the warehouse (a Stripe call, an e-mail, a webhook, files in the artifact
store) records its intent, makes the call, then records the outcome. A worker can die anywhere in between
(OOM killer, a node drained, ``kill -9``), and the retry must still leave exactly one external object. The
crash matrix (``tests/crash/``) proves it by killing a real worker process at each of these points, with
SIGKILL (no ``finally``, no ``except``, no commit: what a dead worker leaves behind), and then retrying.

The points are production hooks, in the style of TigerBeetle's fault injection, not mocks: the writers call
``point(name)`` between intent and outcome, one line each, and nothing happens unless the process was started
with the environment variable ``CLOSEOUT_CRASH_AT`` naming that point (several: comma separated). The variable
is read once per process; with it unset a point costs one truthiness test of a module global. Never set it on
a production worker: a matching point kills the process, as intended.

``POINTS`` declares every name, with what has and has not happened when it fires. A name in
``CLOSEOUT_CRASH_AT`` that is not declared is refused (a typo must not silently test nothing), and so is an
undeclared name passed to ``point`` while crashing is armed. The matrix test fails when a declared point has no
case, so a new point cannot be added without proving the step survives a crash there.
"""

from __future__ import annotations

import os
import signal

ENV_VAR = "CLOSEOUT_CRASH_AT"

_BEFORE = "intent recorded and committed; the call not made"
_AFTER = "the call returned; its outcome not recorded"

POINTS: dict[str, str] = {
    # closeout.payments.publish: the outbox stages (the point names carry the outbox operation)
    "stripe.customer.create.before_call": f"publish, Stripe customer: {_BEFORE}",
    "stripe.customer.create.after_call": f"publish, Stripe customer: {_AFTER}",
    "stripe.invoice.create.before_call": f"publish, draft invoice: {_BEFORE}",
    "stripe.invoice.create.after_call": f"publish, draft invoice: {_AFTER}",
    "stripe.invoice.add_lines.before_call": f"publish, invoice lines: {_BEFORE}",
    "stripe.invoice.add_lines.after_call": f"publish, invoice lines: {_AFTER}",
    "stripe.invoice.finalize.before_call": f"publish, finalization: {_BEFORE}",
    "stripe.invoice.finalize.after_call": f"publish, finalization: {_AFTER}",
    # closeout.payments.credit_notes: corrections (a credit note may carry a refund)
    "stripe.credit_note.create.before_call": f"credit note (and its refund): {_BEFORE}",
    "stripe.credit_note.create.after_call": f"credit note (and its refund): {_AFTER}",
    "stripe.customer_balance.credit.before_call": f"customer balance credit: {_BEFORE}",
    "stripe.customer_balance.credit.after_call": f"customer balance credit: {_AFTER}",
    # closeout.payouts.release
    "stripe.transfer.create.before_call": f"payout transfer: {_BEFORE}",
    "stripe.transfer.create.after_call": f"payout transfer: {_AFTER}",
    # closeout.alerts.mail / closeout.alerts.webhook, inside closeout.alerts.record.deliver_once
    "alert.email.before_send": f"alert e-mail: {_BEFORE}",
    "alert.email.after_send": f"alert e-mail: the SMTP server accepted it; {_AFTER}",
    "alert.webhook.before_send": f"alert webhook: {_BEFORE}",
    "alert.webhook.after_send": f"alert webhook: the receiver answered 2xx; {_AFTER}",
    # closeout.accounting.export, to the artifact store
    "export.before_upload": f"accounting export: files written locally, {_BEFORE} (upload)",
    "export.after_upload": f"accounting export: files uploaded; {_AFTER} (stale parts, folder)",
    # closeout.writeback.harvest_mirror: the Harvest invoice that mirrors a closeout invoice
    "tracker.harvest.invoice.before_call": f"Harvest write-back, invoice: {_BEFORE}",
    "tracker.harvest.invoice.after_call": f"Harvest write-back, invoice: Harvest created it; {_AFTER}",
}

_armed: frozenset[str] | None = None


class UnknownCrashPoint(ValueError):
    """A crash point name that ``POINTS`` does not declare."""


def armed() -> frozenset[str]:
    """The points this process dies at (parsed from ``CLOSEOUT_CRASH_AT`` once; empty when unset)."""
    global _armed
    if _armed is None:
        names = frozenset(n.strip() for n in os.environ.get(ENV_VAR, "").split(",") if n.strip())
        unknown = sorted(names - POINTS.keys())
        if unknown:
            raise UnknownCrashPoint(f"{ENV_VAR} names undeclared crash points {unknown}; declared: {sorted(POINTS)}")
        _armed = names
    return _armed


def point(name: str) -> None:
    """Die here, by SIGKILL, if this process was started with ``CLOSEOUT_CRASH_AT`` naming ``name``."""
    names = _armed if _armed is not None else armed()
    if not names:
        return
    if name not in POINTS:
        raise UnknownCrashPoint(f"crash point {name!r} is not declared in closeout.faults.POINTS")
    if name in names:
        os.kill(os.getpid(), signal.SIGKILL)
