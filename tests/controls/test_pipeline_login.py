"""The DAGs run as a login in ``closeout_pipeline`` (the role a deployment gives the ``closeout_warehouse``
connection): the reconciliation, start to end, on the books closeout's own flow made; the payouts DAG's run as
that login is in test_payout_segregation.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from controls_support import conn_json_as, login_in
from payments_support import last_month

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ledger"))
import ledger_support

pytestmark = pytest.mark.integration
books = ledger_support.books  # three invoices published, two paid, journals posted (as the owner)


def test_the_reconcile_dag_runs_as_a_pipeline_login(warehouse, books, run_dag, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CLOSEOUT_DATA_DOCS_DIR", str(tmp_path / "data_docs"))
    period = last_month().strftime("%Y-%m")
    with login_in("closeout_pipeline") as pipeline:
        monkeypatch.setenv("AIRFLOW_CONN_CLOSEOUT_WAREHOUSE", conn_json_as(pipeline))
        result = run_dag("closeout_reconcile", {"period": period})
        assert result.state == "success", result
        assert warehouse.scalar("SELECT current_user") == pipeline
        statuses = dict(warehouse.rows("SELECT check_name, status FROM closeout.recon_checks WHERE period = %s",
                                       (period,)))  # fmt: skip
    assert statuses and set(statuses.values()) <= {"passed", "not_applicable"}, statuses
    assert statuses["journals"] == "passed"
