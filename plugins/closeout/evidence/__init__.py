"""Evidence packs an auditor opens without SQL (issue 15 item 7; docs/evidence.md).

* ``packs.invoice_pack`` / ``packs.period_pack``: per invoice and per period, JSON and CSV of the entry versions and
  their rate inputs, the invoice lines and the versions each bills, the Stripe ids, events and idempotency keys, the
  journals and their lines, and the API calls behind them (``closeout.sync_requests``), with an index.json of sha256.
* ``incident.build_incident_pack``: every payout hold's incident pack, written when the hold opens; releasing a
  hold requires it (``incident.incident_pack_problem``).
* ``tasks.write_period_evidence``: the month-end close's step.

Command line: ``python -m closeout.evidence pack --invoice ID | --period YYYY-MM`` and
``python -m closeout.evidence incident --hold-id N``.
"""

from closeout.evidence.bundle import Pack
from closeout.evidence.packs import EvidenceError, invoice_pack, period_pack

__all__ = ["EvidenceError", "Pack", "invoice_pack", "period_pack"]
