"""closeout as a platform team installs it: a wheel built from this repository, run without the source tree.

The wheel is built once per module (``pip wheel .``, build isolation: setuptools comes from the index) and
installed with ``--target`` into a temporary folder. Every check then runs in a subprocess of the project's
Python with ``PYTHONPATH`` = that folder only: no ``plugins/``, no repository ``include/``, an empty Airflow
plugins folder and a temporary ``AIRFLOW_HOME``. Airflow comes from the project's venv (cheap, and the same
Airflow the rest of the suite proves); closeout and its resources come only from the wheel.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INCLUDE = ROOT / "include"
# everything `pip wheel .` reads: metadata, the package, its resources
BUILD_INPUTS = ("pyproject.toml", "setup.py", "README.md", "requirements.txt", "plugins", "include")

pytestmark = [
    pytest.mark.packaging,
    pytest.mark.skipif(importlib.util.find_spec("pip") is None, reason="pip is not installed in this Python"),
]


def _resource_files(folder: Path) -> set[str]:
    return {
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith(".pyc")
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # built from a copy of what the build reads, so setuptools' egg-info never lands in the shared plugins/
    source = tmp_path_factory.mktemp("source")
    for name in BUILD_INPUTS:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "-w", str(out), "--no-deps", "-q"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    wheels = list(out.glob("closeout-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", str(target), str(wheel), "-q"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return target


@pytest.fixture(scope="module")
def clean_env(installed: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of a machine that has the wheel and Airflow, but not this repository."""
    home = tmp_path_factory.mktemp("airflow-home")
    empty_plugins = tmp_path_factory.mktemp("no-plugins")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CLOSEOUT_", "PYTHON"))}
    env.update(
        PYTHONPATH=str(installed),
        PYTHONNOUSERSITE="1",
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(empty_plugins),
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        AIRFLOW__LOGGING__LOGGING_LEVEL="ERROR",
    )
    return env


def _run(env: dict[str, str], cwd: Path, *args: str, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(args), env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"{args}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def _python(env: dict[str, str], cwd: Path, code: str) -> str:
    return _run(env, cwd, sys.executable, "-c", textwrap.dedent(code)).stdout


def test_wheel_carries_every_resource_and_the_provider_entry_point(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(archive.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))
        metadata = next(archive.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    shipped = {n.removeprefix("closeout/_include/") for n in names if n.startswith("closeout/_include/")}
    assert _resource_files(INCLUDE) <= shipped, sorted(_resource_files(INCLUDE) - shipped)
    assert {f"closeout/{p}" for p in _resource_files(ROOT / "plugins" / "closeout") if p.endswith(".py")} <= names
    assert "[apache_airflow_provider]" in entry_points
    assert "provider_info = closeout.provider:get_provider_info" in entry_points
    # dependencies are requirements.txt's ranges
    required = {line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")}
    assert "apache-airflow<3.4,>=3.3.2" in required, required
    assert any(r.startswith("stripe") for r in required)


def test_installed_package_reads_every_resource_through_importlib(installed: Path, clean_env: dict, tmp_path) -> None:
    out = _python(clean_env, tmp_path, """
        import json, sys
        import closeout
        from closeout import paths
        from closeout.billing import config as billing
        from closeout.close import report_html
        from closeout.ledger import accounts
        from closeout.payouts import config as payees
        from closeout.recon import tolerances

        assert not any(p.endswith("plugins") for p in sys.path), sys.path
        root = paths.include_dir()
        sql = sorted(p.relative_to(paths.sql_dir()).as_posix() for p in paths.sql_dir().rglob("*.sql"))
        texts = {name: paths.load_sql(name) for name in sql}
        template = report_html._environment().get_template("report.html.j2")
        print(json.dumps({
            "package": closeout.__file__,
            "root": str(root),
            "packaged": str(paths.packaged_include_dir()),
            "sql": sql,
            "empty_sql": [n for n, t in texts.items() if not t.strip()],
            "template": template.filename,
            "css": len((report_html.template_dir() / "report.css").read_text()),
            "accounts": str(accounts.default_path()), "n_accounts": len(accounts.read().accounts),
            "billing": str(billing.default_path()), "clients": len(billing.read().clients),
            "tolerances": str(tolerances.default_path()), "checks": len(tolerances.load()),
            "payees": str(payees.config_path()), "n_payees": len(payees.load()),
            "state": str(paths.state_dir()),
        }))
    """)
    found = json.loads(out)
    target = str(installed)
    for key in ("package", "root", "packaged", "template", "accounts", "billing", "tolerances", "payees"):
        assert found[key].startswith(target), (key, found[key])
    assert str(ROOT) not in json.dumps({k: v for k, v in found.items() if k != "state"})
    repo_sql = sorted(p.relative_to(INCLUDE / "sql").as_posix() for p in (INCLUDE / "sql").rglob("*.sql"))
    assert found["sql"] == repo_sql and len(repo_sql) > 100
    assert not found["empty_sql"]
    assert found["css"] > 0
    assert found["n_accounts"] > 0 and found["checks"] > 0
    # an installed package keeps its state out of site-packages
    assert not found["state"].startswith(target)
    assert found["state"].startswith(clean_env["AIRFLOW_HOME"])


def test_installed_package_migrates_a_fresh_warehouse(
    installed: Path, clean_env: dict, warehouse_server: dict, tmp_path
) -> None:
    import psycopg

    name = f"closeout_pkg_{os.getpid()}"
    admin = dict(host=warehouse_server.get("host"), port=warehouse_server.get("port") or 5432,
                 user=warehouse_server.get("login"), password=warehouse_server.get("password") or None)
    with psycopg.connect(**admin, dbname="postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        env = {**clean_env, "AIRFLOW_CONN_CLOSEOUT_WAREHOUSE": json.dumps({**warehouse_server, "schema": name})}
        first = _run(env, tmp_path, sys.executable, "-m", "closeout.warehouse", "migrate").stdout
        # the console script the wheel installs: `closeout migrate`, as the messages ask
        again = _run(env, tmp_path, str(installed / "bin" / "closeout"), "migrate").stdout
        with psycopg.connect(**admin, dbname=name) as conn:
            applied = [r[0] for r in conn.execute("SELECT version FROM closeout_data.schema_migrations ORDER BY 1")]
        expected = sorted(p.name[:4] for p in (INCLUDE / "sql" / "migrations").glob("*.sql"))
        assert applied == expected
        assert f"{len(expected)} migration(s) applied now" in first
        assert "0 migration(s) applied now" in again and "up to date" in again
    finally:
        with psycopg.connect(**admin, dbname="postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_airflow_lists_closeout_provider_connection_types_and_notifiers(clean_env: dict, tmp_path) -> None:
    providers = json.loads(_run(clean_env, tmp_path, sys.executable, "-m", "airflow", "providers", "list",
                                "-o", "json").stdout)
    closeout = [p for p in providers if p["package_name"] == "closeout"]
    assert closeout and closeout[0]["version"] == "0.1.0", providers
    # what `airflow providers hooks/widgets/notifications` print, read in one process (each CLI call costs ~8 s)
    registry = json.loads(_python(clean_env, tmp_path, """
        import json
        from airflow.providers_manager import ProvidersManager

        manager = ProvidersManager()
        hooks = {t: h._asdict() for t, h in manager.hooks.items() if h is not None}
        print(json.dumps({
            "hooks": {t: h for t, h in hooks.items() if h["package_name"] == "closeout" or t == "http"},
            "widgets": sorted(n for n, w in manager.connection_form_widgets.items() if w.package_name == "closeout"),
            "secret": sorted(n for n, w in manager.connection_form_widgets.items() if w.is_sensitive),
            "behaviours": {t: manager.field_behaviours.get(t) for t in ("harvest", "toggl", "clockify", "stripe")},
            "notifications": [str(getattr(n, "notification_class_name", n)) for n in manager.notification],
        }))
    """).strip().splitlines()[-1])
    types = {t for t, h in registry["hooks"].items() if h["package_name"] == "closeout"}
    assert types == {"harvest", "toggl", "clockify", "stripe", "quickbooks", "xero"}, registry["hooks"]
    assert registry["hooks"]["harvest"]["hook_class_name"] == "closeout.provider_hooks.HarvestConnectionHook"
    assert registry["hooks"]["stripe"]["hook_name"] == "Stripe (closeout)"
    assert "http" in registry["hooks"]  # the existing http connections keep their type
    for field in ("extra__harvest__account_id", "extra__toggl__workspace_id", "extra__toggl__requests_per_hour",
                  "extra__clockify__reports_url", "extra__stripe__webhook_secret"):
        assert field in registry["widgets"], registry["widgets"]
    assert "extra__stripe__webhook_secret" in registry["secret"]
    assert registry["behaviours"]["stripe"]["relabeling"]["password"] == "Secret key"
    assert {n for n in registry["notifications"] if n.startswith("closeout.")} == {
        "closeout.alerts.notifier.FailureNotifier", "closeout.alerts.notifier.CauseResolver"}


def test_dag_files_import_against_the_installed_package(clean_env: dict, installed: Path, tmp_path) -> None:
    out = _python(clean_env, tmp_path, """
        import json
        import closeout
        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag()
        print(json.dumps({"package": closeout.__file__, "dags": sorted(bag.dag_ids),
                          "errors": {k: str(v)[-800:] for k, v in bag.import_errors.items()}}))
    """)
    found = json.loads(out.strip().splitlines()[-1])
    assert found["package"].startswith(str(installed))
    assert not found["errors"], found["errors"]
    expected = {p.stem for p in (ROOT / "dags").glob("closeout_*.py")}
    assert expected <= set(found["dags"]), found["dags"]


def test_copied_folders_use_the_repository_include() -> None:
    """The copy-folders install (plugins/ + include/ side by side) has no packaged resources."""
    from closeout import paths

    assert paths.packaged_include_dir() is None
    assert paths.include_dir() == INCLUDE
    assert paths.sql_dir() == INCLUDE / "sql"
    assert paths.state_dir() == ROOT / ".closeout" or os.environ.get("CLOSEOUT_HOME")
