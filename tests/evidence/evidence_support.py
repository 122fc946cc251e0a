"""Reading evidence packs back the way an auditor would: from the artifact store's folder, every file parsed, every
sha256 checked against index.json."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path
from typing import Any


def folder_of(index: str) -> Path:
    """The local folder of a pack from its index location (the tests use a local artifacts base)."""
    path = Path(index.removeprefix("file://"))
    assert path.name == "index.json", index
    return path.parent


def open_pack(index: str) -> dict[str, Any]:
    """index.json, every listed file present with its sha256 and size, every JSON and CSV file parsed (and agreeing
    on the row count); returns {"index": ..., "json": {name: rows}, "csv": {name: rows as dicts}, "raw": bytes}."""
    folder = folder_of(index)
    meta = json.loads((folder / "index.json").read_text(encoding="utf-8"))
    out: dict[str, Any] = {"index": meta, "json": {}, "csv": {}, "raw": {}}
    listed = {f["name"] for f in meta["files"]}
    on_disk = {p.name for p in folder.iterdir() if p.is_file()} - {"index.json"}
    assert listed == on_disk, (listed ^ on_disk)
    for file in meta["files"]:
        data = (folder / file["name"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == file["sha256"], file["name"]
        assert len(data) == file["bytes"], file["name"]
        out["raw"][file["name"]] = data
        stem, _, suffix = file["name"].rpartition(".")
        if suffix == "json":
            rows = json.loads(data)
            assert isinstance(rows, list) and len(rows) == file["rows"], file["name"]
            out["json"][stem] = rows
        elif suffix == "csv":
            rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))
            assert len(rows) == file["rows"], file["name"]
            out["csv"][stem] = rows
    assert set(out["json"]) == set(out["csv"]), "every table in both formats"
    return out


def every_byte(index: str) -> bytes:
    """All bytes of a pack, index included (for the secrets search)."""
    folder = folder_of(index)
    return b"\n".join(p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file())
