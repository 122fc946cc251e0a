"""closeout_migrate_history reads its exports from the import location in the artifact store: an ``s3://`` prefix on
a real S3 API server on loopback (moto's server mode), with the ``closeout_artifacts`` connection's credentials and
no Amazon provider, through ``dag.test``. The exports are uploaded to the bucket and removed from this machine's disk
before the run, so only the store can have served them; anything outside the prefix is still refused."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import date

import pytest
from closeout import artifacts
from closeout.params import ParamError, confined_files, import_location

from sandbox import exports
from sandbox.harvest import generate_dataset as harvest_dataset
from tests.artifacts.s3_support import make_bucket, s3_env, s3_server

pytestmark = pytest.mark.integration

BUCKET = f"closeout-imports-{uuid.uuid4().hex[:8]}"  # moto's buckets live as long as the process: one per run
OLDER = 400  # days the exported history is moved back: older than anything the API sync holds


@pytest.fixture(scope="module")
def endpoint():
    with s3_server() as url:
        make_bucket(url, BUCKET)
        yield url


@pytest.fixture
def store(endpoint, monkeypatch):
    s3_env(monkeypatch, endpoint, f"s3://{BUCKET}/finance")
    monkeypatch.delenv("CLOSEOUT_IMPORT_URL", raising=False)  # the default: imports/ under the artifacts
    return endpoint


def test_the_import_location_defaults_to_imports_under_the_store(store) -> None:
    assert import_location() == f"s3://{BUCKET}/finance/imports"


def test_an_export_in_the_bucket_is_imported_through_the_store(warehouse, harvest, run_dag, store, tmp_path) -> None:
    harvest.load(harvest_dataset(120, seed=8, anchor=date.today(), days=30))
    assert run_dag("closeout_sync_harvest").state == "success"  # users and projects to map against
    local = exports.harvest_export(harvest, tmp_path / "detailed_time_2024.csv", shift_days=OLDER)
    data = local.read_bytes()
    in_export = sum(1 for _ in csv.DictReader(io.StringIO(data.decode("utf-8"))))
    assert in_export > 0
    artifacts.write(artifacts.path("imports", "harvest", "2024", "detailed_time_2024.csv"), data)
    artifacts.write(artifacts.path("imports", "harvest", "2024", "notes.txt"), b"not an export")
    artifacts.write(artifacts.path("other", "detailed_time_2024.csv"), data)
    local.unlink()  # only the store holds the export now

    [found] = confined_files("path", "harvest/2024")  # a folder: its *.csv files, read from the bucket
    assert str(found) == f"s3://{BUCKET}/finance/imports/harvest/2024/detailed_time_2024.csv"
    for outside in (f"s3://{BUCKET}/finance/other/detailed_time_2024.csv", str(tmp_path / "x.csv"), "../other"):
        with pytest.raises(ParamError):
            confined_files("path", outside)

    synced = warehouse.scalar("SELECT count(*) FROM closeout.time_entries")
    result = run_dag("closeout_migrate_history", {"tracker": "harvest", "path": "harvest/2024"})
    assert result.state == "success", result
    status, files, counts = warehouse.rows(
        "SELECT status, files, counts FROM closeout.history_imports ORDER BY import_id DESC LIMIT 1")[0]  # fmt: skip
    assert status == "imported" and files == [str(found)], (status, files)
    entries = counts["time_entries"]
    assert entries["in_export"] == in_export == entries["in_warehouse"] == entries["new_versions"], entries
    assert warehouse.scalar("SELECT count(*) FROM closeout.time_entries") == synced + in_export

    # a path outside the prefix fails the run at once, naming the param
    refused = run_dag("closeout_migrate_history", {"tracker": "harvest",
                                                   "path": f"s3://{BUCKET}/finance/other/detailed_time_2024.csv"})
    assert refused.state == "failed" and refused.tries["import_history"] == 1, refused
