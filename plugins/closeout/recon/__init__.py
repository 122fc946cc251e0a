"""Reconciliation: one Great Expectations suite per link of the chain, run against the warehouse.

Each check is a differences query (``include/sql/recon/<check>.sql``: one row per difference, empty when the
link holds), materialised once per run into ``closeout_data.recon_differences``; GX then validates the rows
beyond tolerance (``ExpectTableRowCountToEqual(0)``) through a SQL datasource on the warehouse, renders Data
Docs, and the verdicts go to ``closeout.recon_checks``. ``run_reconciliation`` is the entry point;
``tasks.reconcile`` the DAG task (records, then calls ``closeout.gate.breach`` for every failed check).
Great Expectations is imported inside functions only.
"""

from closeout.recon.checks import CHECKS, Check
from closeout.recon.runner import CheckResult, ReconResult, run_reconciliation

__all__ = ["CHECKS", "Check", "CheckResult", "ReconResult", "run_reconciliation"]
