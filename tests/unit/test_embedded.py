"""The embedded warehouse: an existing connection wins; processes sharing a data folder share one server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from closeout.warehouse.embedded import ENV_VAR, ensure_warehouse, stop_embedded

CLIENT = r"""
import json, os, sys
from pathlib import Path

os.environ.pop("AIRFLOW_CONN_CLOSEOUT_WAREHOUSE", None)
from closeout.warehouse.embedded import ensure_warehouse
import psycopg

data_dir = Path(sys.argv[1])
wh = ensure_warehouse(data_dir)
info = json.loads(wh.conn_json)
with psycopg.connect(host=info["host"], port=info["port"], user=info["login"], dbname=info["schema"]) as conn:
    assert conn.execute("SELECT 1").fetchone() == (1,)
postmaster = int((data_dir / "postmaster.pid").read_text().splitlines()[0])
print(json.dumps({"embedded": wh.embedded, "postmaster": postmaster, "db": info["schema"]}), flush=True)
if len(sys.argv) > 2:  # hold the server (a handle) until told to exit
    sys.stdin.readline()
"""


def test_existing_connection_is_used_and_nothing_starts(monkeypatch, tmp_path):
    existing = json.dumps({"conn_type": "postgres", "host": "db.example", "port": 5432, "login": "x"})
    monkeypatch.setenv(ENV_VAR, existing)
    nope = tmp_path / "nope"

    warehouse = ensure_warehouse(nope)

    assert warehouse.embedded is False
    assert warehouse.conn_json == existing
    assert warehouse.data_dir is None
    assert not nope.exists()
    assert os.environ[ENV_VAR] == existing


def _spawn(data_dir: Path, *, hold: bool) -> subprocess.Popen:
    args = [sys.executable, "-c", CLIENT, str(data_dir)] + (["hold"] if hold else [])
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    return subprocess.Popen(
        args, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _report(proc: subprocess.Popen, timeout: float = 30) -> dict:
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=timeout)
        pytest.fail(f"client exited {proc.returncode} without a report:\n{proc.stderr.read()[-3000:]}")
    return json.loads(line)


def test_two_processes_on_one_fresh_folder_share_one_server(monkeypatch):
    root = Path(tempfile.mkdtemp(prefix="cow", dir="/tmp"))  # short: the unix socket lives here
    data_dir = root / "pg"
    procs: list[subprocess.Popen] = []
    try:
        # both start at the same moment on a folder that does not exist yet, and keep their handle
        procs = [_spawn(data_dir, hold=True), _spawn(data_dir, hold=True)]
        first, second = (_report(p) for p in procs)
        assert first["embedded"] is True and second["embedded"] is True
        assert first["postmaster"] == second["postmaster"]
        assert first["db"] == second["db"] == "closeout"

        # one of them exits; the other still holds the server, so it is not stopped under its feet
        procs[0].stdin.close()
        assert procs[0].wait(timeout=30) == 0, procs[0].stderr.read()[-3000:]
        third = _spawn(data_dir, hold=False)
        procs.append(third)
        assert _report(third)["postmaster"] == first["postmaster"]
        assert third.wait(timeout=30) == 0, third.stderr.read()[-3000:]

        # the last user leaves: the server stops with it (cleanup mode 'stop')
        procs[1].stdin.close()
        assert procs[1].wait(timeout=30) == 0, procs[1].stderr.read()[-3000:]
        deadline = time.monotonic() + 10
        while (data_dir / "postmaster.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not (data_dir / "postmaster.pid").exists()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        stop_embedded(data_dir)
        shutil.rmtree(root, ignore_errors=True)
