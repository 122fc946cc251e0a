"""The demo's runtime: where its state lives, the environment Airflow reads at first import, the embedded
warehouse (a fresh database every run), the SQLite Airflow metadata, and real DAG runs with ``dag.test``.

``configure()`` must run before anything imports Airflow: Airflow reads its configuration once.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STATE = ROOT / ".closeout"
AIRFLOW_HOME = STATE / "demo-airflow"
FILES = STATE / "demo"  # the demo's generated billing/payee files, Data Docs and close reports
LOGS = FILES / "logs"  # every DAG run's task output, one file per run
DATABASE = "closeout_demo"
_run_numbers = itertools.count(1)


def configure() -> None:
    os.environ.update({
        "AIRFLOW_HOME": str(AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME / 'airflow.db'}",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",  # into the run log files, not the terminal
        "CLOSEOUT_RETRY_DELAY_SECONDS": "2",
        "CLOSEOUT_DATA_DOCS_DIR": str(FILES / "data_docs"),
        "CLOSEOUT_REPORTS_URL": str(FILES / "reports"),
        "CLOSEOUT_PAYOUTS_APPROVAL": "off",  # the demo releases without a person approving in the UI
        "TQDM_DISABLE": "1",  # Great Expectations' progress bars
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "plugins"), str(ROOT), os.environ.get("PYTHONPATH")])),
    })  # fmt: skip
    for path in (str(ROOT), str(ROOT / "plugins")):
        if path not in sys.path:
            sys.path.insert(0, path)
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    AIRFLOW_HOME.mkdir(parents=True, exist_ok=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    for old in LOGS.glob("*.log"):
        old.unlink()


def step(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def say(message: str) -> None:
    print(f"    {message}", flush=True)


def prepare_warehouse() -> None:
    """A fresh ``closeout_demo`` database on the embedded Postgres (or the one the connection names)."""
    import psycopg
    from closeout.warehouse.embedded import ENV_VAR, ensure_warehouse
    from closeout.warehouse.migrations import migrate

    if os.environ.get(ENV_VAR):
        say("using the Postgres of AIRFLOW_CONN_CLOSEOUT_WAREHOUSE (nothing embedded started)")
    else:
        warehouse = ensure_warehouse(database="postgres")
        conn = json.loads(warehouse.conn_json)
        with psycopg.connect(host=conn["host"], port=conn["port"], user=conn["login"], dbname="postgres",
                             autocommit=True) as admin:  # fmt: skip
            admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{DATABASE}"')
        os.environ[ENV_VAR] = json.dumps({**conn, "schema": DATABASE})
        say(f"embedded Postgres in {warehouse.data_dir.relative_to(ROOT)}, fresh database {DATABASE!r}")
    applied = migrate()
    say(f"{len(applied) if isinstance(applied, list) else applied} migrations applied")


def prepare_airflow() -> None:
    """Migrate the SQLite metadata database (from scratch) and load the shipped pools."""
    (AIRFLOW_HOME / "airflow.db").unlink(missing_ok=True)
    airflow = [sys.executable, "-m", "airflow"]
    started = time.perf_counter()
    for args in (["db", "migrate"], ["pools", "import", str(ROOT / "pools.json")]):
        done = subprocess.run([*airflow, *args], env=dict(os.environ), capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise SystemExit(f"airflow {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    say(f"Airflow home {AIRFLOW_HOME.relative_to(ROOT)} (SQLite) migrated, pools loaded "
        f"in {time.perf_counter() - started:.0f} s")  # fmt: skip


@contextmanager
def output_to(path: Path) -> Iterator[None]:
    """Send everything written to this process's stdout and stderr (task logs included, whichever logger
    writes them) to ``path`` while the block runs, so the demo's own narrative stays readable."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with path.open("ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def run_dag(dag_id: str, conf: dict | None = None, *, expect: str = "success") -> str:
    """One real DAG run, in this process (``dag.test``); returns its run id. Task output goes to a file
    under ``LOGS``. Stops the demo, showing the end of that file, when the run does not end as expected (a
    breach is expected to fail the reconcile run)."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    log = LOGS / f"{next(_run_numbers):02d}-{dag_id}.log"
    started = time.perf_counter()
    with output_to(log):
        bag = DagBag(dag_folder=str(ROOT / "dags" / f"{dag_id}.py"))
        if bag.import_errors:
            raise SystemExit(f"DAG import errors: {bag.import_errors}")
        run = bag.dags[dag_id].test(run_conf=conf or {})
        with create_session() as session:
            dag_run = session.query(DagRun).filter_by(dag_id=dag_id, run_id=run.run_id).one()
            tis = dag_run.get_task_instances(session=session)
            tasks = {ti.task_id: str(ti.state).removeprefix("TaskInstanceState.") for ti in tis}
    state = str(run.state).removeprefix("DagRunState.")
    conf_text = f" {json.dumps(conf)}" if conf else ""
    say(f"{dag_id}{conf_text} -> {state} in {time.perf_counter() - started:.1f} s")
    if state != expect:
        failed = [t for t, s in tasks.items() if s not in ("success", "skipped")]
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        raise SystemExit(f"{tail}\n\n{dag_id} ended {state}, expected {expect}; tasks not done: {failed}; "
                         f"task logs: {log}")  # fmt: skip
    return run.run_id
