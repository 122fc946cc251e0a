"""Deterministic, injection-safe CSV for files a person may open in a spreadsheet.

Why a writer of our own rather than ``csv.writer``: cells are typed. Text cells are neutralised
(OWASP: a cell starting with ``=``, ``+``, ``-``, ``@``, tab, CR or LF gets a leading single quote) and
always quoted, so separators, quotes and line breaks inside a value stay inside its cell whatever the
reader. Number cells are written bare from validated ``Decimal``/``int`` values only, so a credit stays
the number ``-150.00`` instead of becoming the text ``'-150.00``. Rows end in CRLF (RFC 4180), the
encoding is UTF-8 without a byte order mark (a BOM would become part of the first header name in some
importers), and nothing time-dependent is written: the same rows give the same bytes.

Files are written in numbered parts when an import limit applies (``PartedCsv``): a record (an invoice,
a journal) never straddles two files, so each file imports on its own.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Protocol

DANGEROUS_LEADS = frozenset("=+-@\t\r\n")
LINE_END = b"\r\n"


class Number:
    """A numeric cell: written bare, exactly as formatted from a validated ``Decimal``."""

    __slots__ = ("text",)

    def __init__(self, value: Decimal | int) -> None:
        if isinstance(value, bool) or not isinstance(value, Decimal | int):
            raise TypeError(f"a number cell needs an int or Decimal, not {type(value).__name__}")
        if isinstance(value, Decimal) and not value.is_finite():
            raise ValueError(f"a number cell needs a finite value, not {value}")
        # format(int, "f") goes through a float (2**62 + 1 -> "4611686018427387904.000000"): ints as ints
        text = str(value) if isinstance(value, int) else format(value, "f")
        self.text = text[1:] if value == 0 and text.startswith("-") else text

    def __repr__(self) -> str:
        return f"Number({self.text})"


Cell = str | Number | None


def major_units(amount_minor: int, exponent: int) -> Number:
    """Integer minor units as a plain decimal number in major units (``-150`` cents -> ``-1.50``; JPY has
    exponent 0, KWD 3). Decimal only: a float would not survive a billion yen or a fils."""
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise TypeError(f"amounts are integer minor units, not {type(amount_minor).__name__}")
    if not 0 <= exponent <= 4:
        raise ValueError(f"currency exponent {exponent} out of range")
    return Number(Decimal(amount_minor).scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent)))


def decimal_number(value: Decimal | int | str) -> Number:
    """A quantity or rate as stored (numeric), without exponent notation."""
    value = Decimal(value) if isinstance(value, str | int) else value
    return Number(value.normalize() if value == value.to_integral_value() else value)


def neutralise(text: str) -> str:
    """Prefix a single quote when the cell would start a formula; leave every other cell untouched (an
    importer reading the cell as text keeps the quote, so only cells that need it get one)."""
    return "'" + text if text and text[0] in DANGEROUS_LEADS else text


def encode_row(cells: Sequence[Cell]) -> bytes:
    out = []
    for cell in cells:
        if cell is None or cell == "":
            out.append("")
        elif isinstance(cell, Number):
            out.append(cell.text)
        elif isinstance(cell, str):
            out.append('"' + neutralise(cell).replace('"', '""') + '"')
        else:
            raise TypeError(f"cells are text, Number or None, not {type(cell).__name__}")
    return ",".join(out).encode("utf-8") + LINE_END


@dataclass
class FileEntry:
    """One written file, as the manifest lists it."""

    name: str
    system: str
    kind: str
    part: int
    rows: int = 0
    records: int = 0
    sha256: str = ""
    bytes: int = 0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


class Sink(Protocol):
    def write(self, name: str, chunks: Iterable[bytes]) -> None: ...


class MemorySink:
    """Files kept as bytes (tests, previews)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def write(self, name: str, chunks: Iterable[bytes]) -> None:
        self.files[name] = b"".join(chunks)


class DirectorySink:
    """Files in a folder, each written to a temporary name and renamed into place, so a reader never sees
    half a file and a crash leaves the previous version intact."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def write(self, name: str, chunks: Iterable[bytes]) -> None:
        target = self.folder / name
        tmp = target.with_name(f".{name}.tmp")
        with tmp.open("wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(target)


class PartedCsv:
    """Writes records (groups of rows) into ``<stem>_001.csv``, ``<stem>_002.csv``, ... with at most
    ``max_records`` records and ``max_rows`` data rows per file. A record larger than ``max_rows`` gets a
    file of its own and a note, rather than being cut in half."""

    def __init__(self, sink: Sink, stem: str, header: Sequence[str], *, system: str, kind: str,
                 max_records: int | None = None, max_rows: int | None = None) -> None:  # fmt: skip
        self.sink, self.stem, self.header = sink, stem, list(header)
        self.system, self.kind = system, kind
        self.max_records, self.max_rows = max_records, max_rows
        self.entries: list[FileEntry] = []
        self._buffer: list[bytes] = []
        self._current: FileEntry | None = None

    def add_record(self, rows: Sequence[Sequence[Cell]], label: str = "") -> None:
        if not rows:
            return
        encoded = [encode_row(r) for r in rows]
        cur = self._current
        if cur is not None and (
            (self.max_records is not None and cur.records >= self.max_records)
            or (self.max_rows is not None and cur.rows + len(encoded) > self.max_rows)
        ):
            self._flush()
        if self._current is None:
            part = len(self.entries) + 1
            self._current = FileEntry(f"{self.stem}_{part:03d}.csv", self.system, self.kind, part)
            self._buffer = [encode_row(self.header)]
        cur = self._current
        if self.max_rows is not None and len(encoded) > self.max_rows:
            cur.notes.append(f"{label or 'a record'} has {len(encoded)} rows, over the {self.max_rows}-row limit")
        self._buffer.extend(encoded)
        cur.rows += len(encoded)
        cur.records += 1

    def close(self) -> list[FileEntry]:
        self._flush()
        return self.entries

    def _flush(self) -> None:
        if self._current is None:
            return
        data = b"".join(self._buffer)
        self._current.sha256 = hashlib.sha256(data).hexdigest()
        self._current.bytes = len(data)
        self.sink.write(self._current.name, [data])
        self.entries.append(self._current)
        self._current, self._buffer = None, []
