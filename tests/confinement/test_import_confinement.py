"""Issue 15 item 3: the history import reads only inside its configured location, and a CSV that is not UTF-8 is
named by file, line and byte offset.

Real files, real symlinks, a real fsspec object store (``memory://``), the real importer through ``dag.test``."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import date
from pathlib import Path

import pytest
from closeout.params import ParamError, confined_files, confined_path, import_location
from closeout.trackers.history.exports import ExportUnreadable, read_export

HARVEST_HEADER = ["Date", "Client", "Project", "Task", "Notes", "Hours", "Hours Rounded", "Billable?", "Invoiced?",
                  "Approved?", "First Name", "Last Name", "Billable Rate", "Currency"]  # fmt: skip


def _harvest_csv(notes: list[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HARVEST_HEADER)
    for i, note in enumerate(notes):
        writer.writerow([f"2024-01-{i + 1:02d}", "Acme", "Site", "Dev", note, "1.5", "1.5", "Yes", "No", "Yes",
                         "Ana", "Lopes", "100", "USD"])  # fmt: skip
    return out.getvalue()


@pytest.fixture
def location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    base = tmp_path / "imports"
    (base / "harvest").mkdir(parents=True)
    (base / "harvest" / "2024.csv").write_text(_harvest_csv(["a"]), encoding="utf-8")
    monkeypatch.setenv("CLOSEOUT_IMPORT_URL", str(base))
    return base


def test_the_import_location_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLOSEOUT_IMPORT_URL", raising=False)
    monkeypatch.setenv("CLOSEOUT_ARTIFACTS_URL", "s3://finance-artifacts/closeout/")
    assert import_location() == "s3://finance-artifacts/closeout/imports"
    monkeypatch.setenv("CLOSEOUT_IMPORT_URL", "s3://finance-imports/history")
    assert import_location() == "s3://finance-imports/history"


def test_files_inside_the_location_are_read(location: Path) -> None:
    inside = location / "harvest" / "2024.csv"
    assert confined_path("path", "harvest/2024.csv") == inside.resolve()
    assert confined_path("path", str(inside)) == inside.resolve()  # absolute, but inside
    assert confined_path("path", f"file://{inside}") == inside.resolve()
    assert confined_files("path", "harvest") == [inside.resolve()]
    [row] = list(read_export("harvest", confined_files("path", "harvest")[0]))
    assert row.notes == "a" and row.hours == 1.5


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("/etc/passwd", "outside the import location"),
        ("../x", "'..' is not allowed"),
        ("harvest/../../secrets.csv", "'..' is not allowed"),
        ("harvest\\..\\..\\x.csv", "'..' is not allowed"),
        ("file:///etc/passwd", "outside the import location"),
        ("s3://other-bucket/harvest.csv", "only files inside the import location"),
        ("harvest/2024.csv\x00.txt", "control characters"),
        ("", "name a CSV file or folder inside the import location"),
        ("harvest/missing.csv", "no file or folder there"),
    ],
)
def test_anything_else_is_refused_naming_the_param(location: Path, value: str, why: str) -> None:
    with pytest.raises(ParamError) as refused:
        confined_files("path", value)
    assert str(refused.value).startswith("parameter 'path' = ") and why in str(refused.value), refused.value


def test_a_sibling_folder_sharing_the_prefix_is_outside(location: Path) -> None:
    sibling = location.parent / (location.name + "-old")
    sibling.mkdir()
    (sibling / "x.csv").write_text(_harvest_csv(["x"]), encoding="utf-8")
    with pytest.raises(ParamError, match="outside the import location"):
        confined_files("path", str(sibling / "x.csv"))


def test_links_leading_out_of_the_location_are_refused(location: Path, tmp_path: Path) -> None:
    secret = tmp_path / "worker-secret.csv"
    secret.write_text(_harvest_csv(["worker's own file"]), encoding="utf-8")
    (location / "harvest" / "link.csv").symlink_to(secret)
    (location / "escape").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(ParamError, match="a link that leads outside"):
        confined_files("path", "harvest/link.csv")
    with pytest.raises(ParamError, match=r"'path' = 'harvest'.*link\.csv is a link that leads outside"):
        confined_files("path", "harvest")  # a folder holding such a link is refused, not half-read
    with pytest.raises(ParamError, match="a link that leads outside"):
        confined_files("path", "escape/worker-secret.csv")
    # a link that stays inside is fine
    (location / "harvest" / "2024.csv").unlink()
    (location / "harvest" / "link.csv").unlink()
    (location / "2023.csv").write_text(_harvest_csv(["b"]), encoding="utf-8")
    (location / "harvest" / "inner.csv").symlink_to(location / "2023.csv")
    assert confined_files("path", "harvest") == [(location / "2023.csv").resolve()]


def test_an_object_storage_prefix_confines_and_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    import fsspec
    from airflow.sdk.io import attach

    bucket = f"imports-{uuid.uuid4().hex[:8]}"
    memory = fsspec.filesystem("memory")
    attach("memory", fs=memory)  # the store a provider would register for s3:// or gs:// in a deployment
    memory.pipe(f"/{bucket}/history/harvest/2024.csv", _harvest_csv(["from the store"]).encode())
    memory.pipe(f"/{bucket}/other/2024.csv", _harvest_csv(["not for the import"]).encode())
    monkeypatch.setenv("CLOSEOUT_IMPORT_URL", f"memory://{bucket}/history")

    [by_key] = confined_files("path", "harvest")
    [by_url] = confined_files("path", f"memory://{bucket}/history/harvest/2024.csv")
    assert str(by_key) == str(by_url) == f"memory://{bucket}/history/harvest/2024.csv"
    [row] = list(read_export("harvest", by_key))
    assert row.notes == "from the store" and row.file == "2024.csv"
    for value, why in [
        (f"memory://{bucket}/other/2024.csv", "outside the import location"),
        (f"memory://{bucket}/history-old/2024.csv", "outside the import location"),
        (f"memory://another-{bucket}/history/harvest/2024.csv", "outside the import location"),
        (f"s3://{bucket}/history/harvest/2024.csv", "scheme s3:// is not the import location's"),
        ("/etc/passwd", "an absolute path on the worker"),
        ("../other/2024.csv", "'..' is not allowed"),
    ]:
        with pytest.raises(ParamError) as refused:
            confined_files("path", value)
        assert str(refused.value).startswith("parameter 'path' = ") and why in str(refused.value), refused.value


def test_a_csv_that_is_not_utf8_names_the_file_line_and_byte(location: Path) -> None:
    good = _harvest_csv(["first", "second"]).encode("utf-8")
    latin1 = _harvest_csv(["Café Noël"]).encode("latin-1").split(b"\r\n", 1)[1]  # the row, in Latin-1
    path = location / "harvest" / "legacy.csv"
    path.write_bytes(good + latin1)
    offset = len(good) + latin1.index(b"\xe9")
    rows = read_export("harvest", path)
    assert next(rows).notes == "first" and next(rows).notes == "second"  # what precedes is read
    with pytest.raises(ExportUnreadable) as unreadable:
        list(rows)
    assert str(unreadable.value).startswith(f"legacy.csv: line 4, byte offset {offset}: not UTF-8 (bytes e9)")


def test_a_byte_order_mark_is_accepted(location: Path) -> None:
    path = location / "harvest" / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + _harvest_csv(["Café", "naïve"]).encode("utf-8"))
    assert [r.notes for r in read_export("harvest", path)] == ["Café", "naïve"]
    bad = location / "harvest" / "excel-bad.csv"
    bad.write_bytes(b"\xef\xbb\xbf" + b"Date,Client\xff\r\n")
    with pytest.raises(ExportUnreadable, match=r"excel-bad.csv: line 1, byte offset 14: not UTF-8"):
        list(read_export("harvest", bad))


# -- through the DAG -------------------------------------------------------------------------------------------
@pytest.mark.integration
def test_the_dag_refuses_a_path_outside_at_once(warehouse, run_dag, location: Path) -> None:
    result = run_dag("closeout_migrate_history", {"tracker": "harvest", "path": "/etc/passwd"})
    assert result.state == "failed" and result.tries["import_history"] == 1, result  # no retry of a bad param
    assert warehouse.scalar("SELECT count(*) FROM closeout_data.history_imports") == 0
    [message] = warehouse.rows("SELECT message FROM closeout_data.alert_causes "
                               "WHERE dag_id = 'closeout_migrate_history'")[0]  # fmt: skip
    assert "parameter 'path' = '/etc/passwd': outside the import location" in message

    bad_cutoff = run_dag("closeout_migrate_history", {"tracker": "harvest", "path": "harvest", "cutoff": "2024-02-30"})
    assert bad_cutoff.state == "failed" and bad_cutoff.tries["import_history"] == 1
    messages = [m for (m,) in warehouse.rows("SELECT message FROM closeout_data.alert_causes")]
    assert any("parameter 'cutoff' = '2024-02-30': not a calendar day" in m for m in messages), messages


@pytest.mark.integration
def test_the_dag_rejects_a_latin1_export_and_imports_one_with_a_bom(warehouse, harvest, run_dag,
                                                                    location: Path) -> None:  # fmt: skip
    from sandbox import exports
    from sandbox.harvest import generate_dataset

    harvest.load(generate_dataset(40, seed=5, anchor=date.today(), days=20))
    assert run_dag("closeout_sync_harvest").state == "success"  # users and projects to map against
    export = exports.harvest_export(harvest, location / "harvest" / "sandbox.csv", shift_days=400)
    (location / "harvest" / "2024.csv").unlink()
    text = export.read_text(encoding="utf-8")
    header, first, rest = text.split("\n", 2)
    broken = location / "broken" / "latin1.csv"
    broken.parent.mkdir()
    broken.write_bytes((header + "\n" + first + "\n").encode("utf-8") + "Zoë;".encode("latin-1") + rest.encode())
    offset = len((header + "\n" + first + "\n").encode("utf-8")) + 2

    failed = run_dag("closeout_migrate_history", {"tracker": "harvest", "path": "broken"})
    assert failed.state == "failed" and failed.tries["import_history"] == 1, failed
    assert warehouse.rows("SELECT status FROM closeout_data.history_imports") == [("rejected",)]
    [(message,)] = warehouse.rows("SELECT message FROM closeout_data.alert_causes "
                                  "WHERE dag_id = 'closeout_migrate_history'")  # fmt: skip
    assert f"latin1.csv: line 3, byte offset {offset}: not UTF-8 (bytes eb)" in message, message
    assert warehouse.scalar("SELECT count(*) FROM closeout.time_entries WHERE source_id LIKE 'csv:%%'") == 0

    export.write_bytes(b"\xef\xbb\xbf" + export.read_bytes())
    imported = run_dag("closeout_migrate_history", {"tracker": "harvest", "path": "harvest/sandbox.csv"})
    assert imported.state == "success", imported
    rows = sum(1 for _ in csv.DictReader(io.StringIO(text)))
    assert warehouse.scalar("SELECT count(*) FROM closeout.time_entries WHERE source_id LIKE 'csv:%%'") == rows
