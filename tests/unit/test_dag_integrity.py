"""Every DAG file imports cleanly, follows the house rules, parses fast and imports nothing heavy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

DAGS_DIR = ROOT / "dags"
DAG_FILES = sorted(p for p in DAGS_DIR.glob("*.py") if not p.name.startswith("_"))
CONTRACT_DAG_IDS = {
    "closeout_sync_harvest",
    "closeout_sync_toggl",
    "closeout_sync_clockify",
    "closeout_invoice_drafts",
    "closeout_stripe_publish",
    "closeout_stripe_events",
    "closeout_reconcile",
    "closeout_payouts",
    "closeout_month_end_close",
    "closeout_migrate_history",
    "closeout_pilot_compare",
    "closeout_weekly_summary",
    "closeout_accounting_sync",
    "closeout_tracker_writeback",
}
ONE_RUN_AT_A_TIME = {
    "closeout_sync_harvest",
    "closeout_sync_toggl",
    "closeout_sync_clockify",
    "closeout_invoice_drafts",
    "closeout_stripe_publish",
    "closeout_stripe_events",
    "closeout_payouts",
    "closeout_reconcile",
    "closeout_month_end_close",
    "closeout_pilot_compare",
    "closeout_accounting_sync",
    "closeout_tracker_writeback",
}
HEAVY_MODULES = ("pandas", "great_expectations", "stripe", "psycopg", "requests")
HARVEST_POOL = "harvest_api"
HARVEST_CALLING_TASKS = {"closeout_sync_harvest": {"reference", "entries", "sweep"}}
# A DAG file that reads a Variable, opens a connection or imports a heavy library at top level takes seconds;
# a thin one takes milliseconds (the first file pays closeout's shared imports, about 0.15 s here). The budget sits
# far above the thin case so a loaded CI machine never fails it, and far below Airflow's 30 s dagbag import timeout;
# the deterministic part of the rule is test_dag_file_imports_nothing_heavy_at_top_level.
PARSE_BUDGET_SECONDS = 1.0


def _bag(path: Path):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(path))


@pytest.fixture(scope="module")
def bags() -> dict[str, object]:
    return {path.name: _bag(path) for path in DAG_FILES}


@pytest.fixture(scope="module")
def dags(bags) -> dict[str, object]:
    found = {}
    for bag in bags.values():
        found.update(bag.dags)
    return found


def test_there_are_dag_files():
    assert DAG_FILES, f"no DAG files in {DAGS_DIR}"


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_imports_without_errors(bags, path):
    bag = bags[path.name]
    assert not bag.import_errors, bag.import_errors
    assert bag.dags, f"{path.name} defines no DAG"
    # one DAG per file, named like the file
    assert set(bag.dags) == {path.stem}


def test_dag_ids_are_contract_names(dags):
    assert dags
    assert set(dags) <= CONTRACT_DAG_IDS


def test_every_dag_follows_the_house_rules(dags):
    for dag_id, dag in dags.items():
        owner = dag.default_args.get("owner")
        assert owner and owner != "airflow", dag_id
        assert dag.tags, dag_id
        assert dag.doc_md and dag.doc_md.strip(), dag_id
        assert dag.catchup is False, dag_id
        assert dag.tasks, dag_id
        for task in dag.tasks:
            assert task.retries >= 1, (dag_id, task.task_id)
            assert task.owner == owner, (dag_id, task.task_id)


def test_syncs_run_one_at_a_time(dags):
    for dag_id in ONE_RUN_AT_A_TIME & set(dags):
        assert dags[dag_id].max_active_runs == 1, dag_id
    assert "closeout_sync_harvest" in dags


def test_harvest_calls_use_the_harvest_pool(dags):
    for dag_id, task_ids in HARVEST_CALLING_TASKS.items():
        dag = dags[dag_id]
        assert task_ids <= set(dag.task_ids), (dag_id, dag.task_ids)
        for task_id in task_ids:
            assert dag.get_task(task_id).pool == HARVEST_POOL, (dag_id, task_id)


def test_pools_file_defines_the_harvest_pool():
    pools = json.loads((ROOT / "pools.json").read_text(encoding="utf-8"))
    assert HARVEST_POOL in pools
    assert int(pools[HARVEST_POOL]["slots"]) >= 1


PARSE_PROBE = r"""
import json, runpy, sys, time
import airflow.sdk  # warm, as in a dag processor

heavy = json.loads(sys.argv[1])
report = {}
for path in sys.argv[2:]:
    started = time.perf_counter()
    runpy.run_path(path, run_name="__dag_probe__")
    report[path] = {"seconds": time.perf_counter() - started, "heavy": [m for m in heavy if m in sys.modules]}
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def parse_report() -> dict:
    result = subprocess.run(
        [sys.executable, "-c", PARSE_PROBE, json.dumps(HEAVY_MODULES), *map(str, DAG_FILES)],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_parses_fast(parse_report, path):
    assert parse_report[str(path)]["seconds"] < PARSE_BUDGET_SECONDS, parse_report[str(path)]


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_imports_nothing_heavy_at_top_level(parse_report, path):
    assert parse_report[str(path)]["heavy"] == []


@pytest.mark.parametrize("syntax", ["glob", "regexp"])  # [core] dag_ignore_file_syntax
def test_plugin_loader_does_not_import_the_closeout_package_by_bare_name(syntax):
    from airflow._shared.module_loading import find_path_from_directory

    plugins = ROOT / "plugins"
    package = (plugins / "closeout").resolve()
    found = [Path(p).resolve() for p in find_path_from_directory(plugins, ".airflowignore", syntax)]
    assert not [p for p in found if p.is_relative_to(package)], found
    assert (plugins / ".airflowignore").is_file()
