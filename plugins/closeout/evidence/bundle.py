"""One evidence pack on disk or in the object store: each table as JSON and CSV, a README and an index.json with
the sha256 of every file, written through the artifact store (docs/artifacts.md).

Why both formats: JSON keeps types (amounts are integer minor units, hours and rates exact decimal strings) for a
script, CSV opens in a spreadsheet for a person. CSV cells go through ``closeout.accounting.csv_safe``: text that
would start a formula gets a leading quote, numbers are written bare from ``int``/``Decimal`` only. Every text
value is masked (``closeout.masking``) before it is written: a pack is handed to outsiders. ``index.json`` is
written last, so a pack with an index is complete; it lists the files with their sha256 so an auditor can prove
that what they hold is what closeout wrote.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import psycopg

from closeout import artifacts
from closeout.accounting.csv_safe import Cell, Number, encode_row
from closeout.masking import mask_data, mask_secrets
from closeout.paths import load_sql

INDEX = "index.json"
README = "README.md"


@dataclass(frozen=True)
class Table:
    """One query's result, written as ``<name>.json`` and ``<name>.csv``."""

    name: str
    about: str
    columns: list[str]
    rows: list[tuple]


@dataclass
class Pack:
    """A written pack: its folder, its index, and what it holds (file name -> rows, sha256)."""

    kind: str
    folder: str
    index: str
    subject: dict[str, Any]
    built_at: str
    files: list[dict[str, Any]] = field(default_factory=list)

    @property
    def link(self) -> str | None:
        """The index as a link a person opens (public base, presigned URL or file://)."""
        return artifacts.link(self.index)

    def summary(self) -> dict[str, Any]:
        return {"kind": self.kind, "folder": self.folder, "index": self.index, "subject": self.subject,
                "files": len(self.files), "rows": {f["name"]: f["rows"] for f in self.files}}  # fmt: skip


def query(conn: psycopg.Connection, name: str, about: str, sql_file: str, params: dict[str, Any]) -> Table:
    """Run ``include/sql/evidence/<sql_file>`` (parameterised, set-based) into a Table."""
    cur = conn.execute(load_sql(f"evidence/{sql_file}"), params)
    columns = [d.name for d in cur.description or []]
    return Table(name, about, columns, cur.fetchall())


def json_value(value: Any) -> Any:
    """A value as JSON keeps it exactly: decimals as strings (never floats), times in ISO 8601, text masked."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, Decimal):
        return format(value, "f") if value.is_finite() else str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, dict | list | tuple):
        return mask_data(json.loads(json.dumps(value, default=str)))
    return mask_secrets(str(value))


def csv_cell(value: Any) -> Cell:
    """A value as a CSV cell: numbers bare (exact), everything else text, neutralised by the CSV writer."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):  # through Decimal: format(int, "f") would go through a float
        return Number(Decimal(value))
    if isinstance(value, Decimal) and value.is_finite():
        return Number(value)
    if isinstance(value, dict | list | tuple):
        return json.dumps(json_value(value), sort_keys=True, ensure_ascii=False)
    value = json_value(value)
    return value if isinstance(value, str) else str(value)


def table_json(table: Table) -> bytes:
    rows = [{c: json_value(v) for c, v in zip(table.columns, row, strict=True)} for row in table.rows]
    return (json.dumps(rows, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def table_csv(table: Table) -> bytes:
    return encode_row(table.columns) + b"".join(encode_row([csv_cell(v) for v in row]) for row in table.rows)


def _readme(kind: str, title: str, subject: dict[str, Any], built_at: str, files: list[dict[str, Any]]) -> bytes:
    lines = [f"# {title}", "", f"Evidence pack ({kind}) written by closeout at {built_at}.", ""]
    lines += [f"- **{k}**: {v}" for k, v in subject.items() if not isinstance(v, dict | list)]
    lines += ["", "| file | rows | sha256 | what it holds |", "|---|---|---|---|"]
    lines += [f"| {f['name']} | {f['rows']} | `{f['sha256']}` | {f['about']} |" for f in files]
    lines += [
        "",
        "Amounts are integer minor units of their currency (cents for USD, yen for JPY); hours and rates are exact",
        "decimals (strings in JSON). CSV files are UTF-8; a text cell that would start a spreadsheet formula",
        "(`=`, `+`, `-`, `@`) starts with a single quote. `index.json` lists every file with its sha256:",
        "`sha256sum <file>` proves a file is the one closeout wrote. Credentials never appear (masked as `***`).",
        "",
    ]
    return "\n".join(lines).encode("utf-8")


def write_pack(conn: psycopg.Connection, kind: str, folder_parts: Sequence[str], title: str,
               subject: dict[str, Any], tables: Sequence[Table]) -> Pack:  # fmt: skip
    """Write every table (JSON and CSV), the README, and last the index; return the Pack.

    ``built_at`` is the warehouse clock, the same clock every recorded row carries."""
    (built,) = conn.execute("SELECT clock_timestamp()").fetchone()
    built_at = built.isoformat()
    folder = artifacts.path(*folder_parts)
    files: list[dict[str, Any]] = []
    for table in tables:
        for suffix, data in (("json", table_json(table)), ("csv", table_csv(table))):
            name = f"{table.name}.{suffix}"
            artifacts.write(f"{folder}/{name}", data)
            files.append({"name": name, "rows": len(table.rows), "bytes": len(data),
                          "sha256": hashlib.sha256(data).hexdigest(), "about": table.about})  # fmt: skip
    readme = _readme(kind, title, subject, built_at, files)
    artifacts.write(f"{folder}/{README}", readme)
    listed = [*files, {"name": README, "rows": None, "bytes": len(readme),
                       "sha256": hashlib.sha256(readme).hexdigest(), "about": "this pack explained"}]  # fmt: skip
    index = {"pack": kind, "title": title, "subject": json_value(subject), "built_at": built_at,
             "location": folder, "files": listed}  # fmt: skip
    index_url = artifacts.write(f"{folder}/{INDEX}", (json.dumps(index, indent=1) + "\n").encode("utf-8"))
    return Pack(kind, folder, index_url, subject, built_at, listed)


def read_index(location: str) -> dict[str, Any]:
    """The index.json of a pack (``location`` is the index itself or its folder)."""
    url = location if location.endswith(f"/{INDEX}") else f"{location.rstrip('/')}/{INDEX}"
    return json.loads(artifacts.read(url))
