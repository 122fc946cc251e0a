"""One place for every artifact a person or a later task opens (DESIGN.md "Artifacts").

``CLOSEOUT_ARTIFACTS_URL`` names the base: a local folder (default ``<state dir>/artifacts`` for the demo) or
any fsspec URL (``s3://bucket/prefix``). Credentials and endpoint come from the Airflow connection
``closeout_artifacts`` (type aws: login = access key id, password = secret key, extra ``endpoint_url`` and
``region_name``), so a worker on any machine writes to, and a later task reads from, the same store; nothing
is left on a worker's disk.

Links for people: ``CLOSEOUT_ARTIFACTS_PUBLIC_URL`` (an https base serving the same location) when set, else a
presigned URL where the store offers one (S3: ``CLOSEOUT_ARTIFACTS_LINK_SECONDS``, default 7 days), else a
``file://`` URL, only for a local base (the demo on one machine).

Plain fsspec (s3fs for S3) is used rather than ``ObjectStoragePath``: for ``s3://`` the latter needs the Amazon
provider, which closeout does not otherwise require.

Public API (``from closeout import artifacts``; other modules, the evidence packs and the deployment test rely on
these names and signatures, keep them stable):

- ``base() -> str``: the base location (an absolute local path, or a URL such as ``s3://bucket/prefix``).
- ``path(*parts) -> str``: the location of one artifact under the base (``..`` refused).
- ``write(location, data: bytes) -> str``, ``read(location) -> bytes``, ``exists(location) -> bool``,
  ``listing(folder) -> list[str]`` (files directly below, sorted), ``remove(location)``,
  ``upload_folder(local: Path, folder) -> list[str]`` (a tool's local output copied to the store).
- ``url(location) -> str``: the link a person opens (public https base, else presigned, else ``file://``).
- ``link(value) -> value``: ``url`` when ``value`` names an artifact under the base, else ``value`` unchanged;
  ``link_text(text) -> str``: the same for every location inside a sentence (run notes, messages).
- ``stored_path(location) -> StoredPath``: a read-only path object (``name``, ``is_file``, ``is_dir``,
  ``iterdir``, ``open("rb")``) over the store's filesystem, for readers written against ``pathlib``.
- ``filesystem(location=None)``, ``storage_options(location=None)``: the fsspec filesystem and its options, with
  the ``closeout_artifacts`` connection's credentials.
- ``URL_ENV``, ``PUBLIC_URL_ENV``, ``LINK_SECONDS_ENV``, ``CONN_ID``; ``ArtifactError``.

What the warehouse records is always the *location*; it becomes a link only where it is shown (alerts, run notes,
the close report), so a presigned link is fresh when it is handed out.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

URL_ENV = "CLOSEOUT_ARTIFACTS_URL"
PUBLIC_URL_ENV = "CLOSEOUT_ARTIFACTS_PUBLIC_URL"
LINK_SECONDS_ENV = "CLOSEOUT_ARTIFACTS_LINK_SECONDS"
CONN_ID = "closeout_artifacts"
DEFAULT_LINK_SECONDS = 7 * 24 * 3600  # the longest a SigV4 presigned URL may live


class ArtifactError(RuntimeError):
    """The artifact store is misconfigured or refused an operation (names the location, never a secret)."""


def _is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def base() -> str:
    """The artifacts base as a URL without trailing slash; a local base is an absolute path (same link for
    whoever reads it)."""
    from closeout.paths import state_dir

    where = (os.environ.get(URL_ENV) or str(state_dir() / "artifacts")).rstrip("/")
    if _is_local(where):
        local = where[len("file://") :] if where.startswith("file://") else where
        return str(Path(local).expanduser().absolute())
    return where


def path(*parts: str) -> str:
    """The URL (or absolute local path) of one artifact under the base, e.g. ``path("reports", "2026-11",
    "index.html")``. Parts may not climb out of the base."""
    clean = []
    for part in parts:
        for piece in str(part).strip("/").split("/"):
            if piece in ("", "."):
                continue
            if piece == "..":
                raise ArtifactError(f"artifact path {'/'.join(map(str, parts))!r} leaves the artifacts location")
            clean.append(piece)
    return "/".join([base(), *clean])


def storage_options(url: str | None = None) -> dict[str, Any]:
    """fsspec options for the store: from the ``closeout_artifacts`` connection when it exists (S3 keys,
    endpoint, region), else none (the store's own defaults: instance roles, ``AWS_*`` variables)."""
    url = url or base()
    if _is_local(url):
        return {}
    conn = _connection()
    is_s3 = url.startswith(("s3://", "s3a://"))
    # SigV4 presigned links: a lifetime in seconds (X-Amz-Expires) and accepted in every region
    sigv4: dict[str, Any] = {"config_kwargs": {"signature_version": "s3v4"}} if is_s3 else {}
    if conn is None:
        return sigv4
    extra = conn.extra
    if is_s3:
        opts: dict[str, Any] = dict(sigv4)
        if conn.login:
            opts["key"] = conn.login
        if conn.password:
            opts["secret"] = conn.password
        client: dict[str, Any] = {}
        endpoint = extra.get("endpoint_url") or (conn.host if conn.host and "://" in conn.host else None)
        if endpoint:
            client["endpoint_url"] = endpoint
        if extra.get("region_name"):
            client["region_name"] = extra["region_name"]
        if client:
            opts["client_kwargs"] = client
        return opts
    return dict(extra.get("storage_options") or {})


def _connection():
    from closeout.connections import get_connection

    try:
        return get_connection(CONN_ID)
    except Exception as exc:  # AirflowNotFoundException and friends: the connection is optional
        if type(exc).__name__ in ("AirflowNotFoundException", "AirflowException", "ConnectionNotFound"):
            return None
        raise


@cache
def _fs_for(url: str, options_key: str):
    import json

    import fsspec

    fs, _root = fsspec.core.url_to_fs(url, **json.loads(options_key))
    return fs


def filesystem(url: str | None = None):
    """The fsspec filesystem holding ``url`` (default: the base), with the connection's credentials."""
    import json

    url = url or base()
    target = url if not _is_local(url) else "file://" + url.removeprefix("file://")
    scheme_root = target.split("://", 1)[0] + "://"
    return _fs_for(scheme_root, json.dumps(storage_options(url), sort_keys=True))


def _fs_path(url: str) -> str:
    """The path fsspec expects: no scheme."""
    if _is_local(url):
        return url.removeprefix("file://")
    return url.split("://", 1)[1]


def write(url: str, data: bytes) -> str:
    """Write one artifact whole and return its URL. Local files go to a temporary name and are renamed into
    place (a reader never sees half a file); object stores replace an object whole on their own."""
    fs = filesystem(url)
    target = _fs_path(url)
    if _is_local(url):
        local = Path(target)
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f".{local.name}.tmp")
        tmp.write_bytes(data)
        tmp.replace(local)
        return url
    fs.pipe_file(target, data)
    return url


def read(url: str) -> bytes:
    """The bytes of one artifact (from the store, never from a worker's disk unless the base is local)."""
    try:
        return filesystem(url).cat_file(_fs_path(url))
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"no artifact at {url}") from exc


def exists(url: str) -> bool:
    return filesystem(url).exists(_fs_path(url))


def listing(url: str) -> list[str]:
    """URLs of the files directly under ``url`` (a folder), sorted; empty when there is none."""
    fs = filesystem(url)
    folder = _fs_path(url)
    try:
        entries = fs.ls(folder, detail=True)
    except FileNotFoundError:
        return []
    prefix = url.split("://", 1)[0] + "://" if not _is_local(url) else ""
    return sorted(prefix + e["name"] for e in entries if e.get("type") == "file")


def remove(url: str) -> None:
    fs = filesystem(url)
    with contextlib.suppress(FileNotFoundError):
        fs.rm_file(_fs_path(url))


def upload_folder(local: Path, url: str) -> list[str]:
    """Copy every file below the local folder ``local`` to ``url`` (same relative paths) and return their
    URLs. For tools that can only write to a local folder (GX Data Docs, the CSV writers): they write to a
    temporary folder, this puts the result where every worker and person finds it."""
    written = []
    for file in sorted(_files(local)):
        relative = file.relative_to(local).as_posix()
        written.append(write(f"{url.rstrip('/')}/{relative}", file.read_bytes()))
    return written


def _files(folder: Path) -> Iterator[Path]:
    return (p for p in folder.rglob("*") if p.is_file())


def link_seconds() -> int:
    raw = os.environ.get(LINK_SECONDS_ENV)
    if not raw:
        return DEFAULT_LINK_SECONDS
    seconds = int(raw)
    if not 1 <= seconds <= DEFAULT_LINK_SECONDS:
        raise ArtifactError(f"{LINK_SECONDS_ENV}={raw}: expected 1..{DEFAULT_LINK_SECONDS} seconds")
    return seconds


def url(artifact: str) -> str:
    """The link a person opens for ``artifact`` (a URL or path from :func:`path`).

    ``CLOSEOUT_ARTIFACTS_PUBLIC_URL`` + the part below the base when set; else a presigned URL where the store
    offers one; else ``file://`` for a local base. A remote store without either raises: a link that only
    works with credentials is not a link."""
    root = base()
    relative = None
    if artifact == root or artifact.startswith(root + "/"):
        relative = artifact[len(root) :].lstrip("/")
    public = os.environ.get(PUBLIC_URL_ENV)
    if public and relative is not None:
        from urllib.parse import quote

        return f"{public.rstrip('/')}/{quote(relative)}"
    if _is_local(artifact):
        return Path(artifact.removeprefix("file://")).as_uri()
    fs = filesystem(artifact)
    try:
        return fs.sign(_fs_path(artifact), expiration=link_seconds())
    except NotImplementedError as exc:
        raise ArtifactError(
            f"the store of {artifact} gives no presigned links: set {PUBLIC_URL_ENV} to an https base serving it"
        ) from exc


def link(value: str | None) -> str | None:
    """``value`` as a link for people when it names an artifact under the base (:func:`url`), else unchanged:
    locations are recorded (run rows, evidence) and turned into links where they are shown, so a presigned
    link is fresh when an alert or report is made."""
    if not value:
        return value
    root = base()
    text = str(value)
    if _is_local(root) and text.startswith("file://"):
        text = text[len("file://") :]
    if text == root or text.startswith(root + "/"):
        return url(text)
    return value


def link_text(text: str) -> str:
    """``text`` with every artifact location in it (a whitespace-separated word under the base, trailing
    punctuation kept outside) replaced by its link (:func:`link`): for sentences such as a run's note."""
    if not text:
        return text

    def one(word: str) -> str:
        core = word.rstrip(".,;:)")
        linked = link(core)
        return word if linked == core else f"{linked}{word[len(core):]}"

    return "".join(one(part) if part and not part.isspace() else part for part in re.split(r"(\s+)", text))


class StoredPath:
    """A read-only path into the store (any fsspec URL, with the ``closeout_artifacts`` connection's credentials):
    what a ``pathlib``-style reader needs (the history import's CSV reader), without the Amazon provider that
    ``ObjectStoragePath`` needs for ``s3://``."""

    def __init__(self, location: str) -> None:
        self.location = location.rstrip("/")

    def __str__(self) -> str:
        return self.location

    def __repr__(self) -> str:
        return f"StoredPath({self.location!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StoredPath) and other.location == self.location

    def __hash__(self) -> int:
        return hash(self.location)

    @property
    def name(self) -> str:
        return self.location.rsplit("/", 1)[-1]

    def _fs(self):
        return filesystem(self.location)

    def is_file(self) -> bool:
        return bool(self._fs().isfile(self.location))

    def is_dir(self) -> bool:
        return bool(self._fs().isdir(self.location))

    def iterdir(self) -> Iterator[StoredPath]:
        scheme = "" if _is_local(self.location) else self.location.split("://", 1)[0] + "://"
        for entry in self._fs().ls(self.location, detail=False):
            name = str(entry)
            if scheme and "://" not in name:  # fsspec lists paths without the scheme (memory: with a leading /)
                name = scheme + name.lstrip("/")
            yield StoredPath(name)

    def open(self, mode: str = "rb"):
        if mode != "rb":
            raise ArtifactError(f"{self.location}: stored paths are opened for reading only")
        return self._fs().open(self.location, "rb")

    def read_bytes(self) -> bytes:
        return read(self.location)


def stored_path(location: str) -> StoredPath:
    """A read-only :class:`StoredPath` for ``location`` (a URL or local path)."""
    return StoredPath(location)
