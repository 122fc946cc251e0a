"""Crash matrix, accounting export: the worker exporting a period to the artifact store (a local base here, the
same code path as S3) is killed (SIGKILL) after the files were written to its temporary folder and before the
upload, and after the upload and before the export's location is recorded; the export then runs again. The
artifact store holds exactly the manifest's files, once each, byte for byte as the manifest says, and nothing
else; one export run is recorded for that location."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal as D
from pathlib import Path

import pytest
from closeout.accounting.export import run_export
from closeout.ledger import tasks as ledger_tasks
from crash_support import die_at
from payments_support import last_month, seed_drafts

pytestmark = pytest.mark.integration

EXPORT_POINTS = ["export.before_upload", "export.after_upload"]


def _stored(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative name -> sha256), read from the disk, not through closeout."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


@pytest.mark.parametrize("point", EXPORT_POINTS)
def test_an_export_killed_around_its_upload_leaves_one_set_of_files(
    warehouse, stripe_sandbox, tmp_path, monkeypatch, point: str
) -> None:
    from closeout.payments import tasks

    base = tmp_path / "artifacts"
    monkeypatch.setenv("CLOSEOUT_ARTIFACTS_URL", str(base))
    monkeypatch.delenv("CLOSEOUT_EXPORT_DIR", raising=False)
    seed_drafts({"a": [D("2"), D("1")], "b": [D("3")]})
    tasks.publish_drafts("publish")
    ledger_tasks.post_journals("post")
    period = last_month().strftime("%Y-%m")

    die_at(point, f"from closeout.accounting.export import run_export; run_export({period!r}, 'crashed-worker')")
    exports = base / "exports"
    if point == "export.before_upload":
        assert not exports.exists() or _stored(exports) == {}, "nothing reached the store before the upload"

    manifest = run_export(period, "retry")
    assert manifest["invoices"] == 2 and manifest["files"]
    expected = {f"{period}/{f['name']}": f["sha256"] for f in manifest["files"]}
    stored = _stored(exports)
    assert stored.pop(f"{period}/manifest.json") == manifest["content_sha256"]
    assert stored == expected, "exactly the manifest's files, once each, nothing left over"
    body = json.loads((exports / period / "manifest.json").read_text())
    assert body["invoices"] == 2 and sorted(f["name"] for f in body["files"]) == sorted(
        f["name"] for f in manifest["files"]
    )
    target = manifest["folder"]
    runs = warehouse.rows(
        "SELECT DISTINCT export_run_id, status, folder FROM closeout.accounting_exports ORDER BY export_run_id"
    )
    # the dead worker's run says it never finished, and names the store's location, not its temporary folder;
    # the retry is the one succeeded export of the period
    assert [(status, folder) for _, status, folder in runs] == [("running", target), ("succeeded", target)], runs
