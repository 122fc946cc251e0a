"""Cross-tracker identity: the same client, project, task or user in several trackers, one contract key.

Configured as the Airflow Variable ``closeout_identity_map`` (JSON), kind -> contract key -> tracker
-> the tracker's ids::

    {"client": {"client:acme": {"harvest": ["42"], "clockify": ["5f3e0c..."], "toggl": ["777"]}},
     "user":   {"user:ada":    {"harvest": ["7"],  "clockify": ["66a1..."],  "toggl": ["9100029"]}}}

Every sync applies it first (replacing the previous mapping as a whole, so removing a line removes
the mapping). The contract views resolve keys through it when read, so a mapping added later
applies to past entries as well; stored versions keep the tracker's own key for audit.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg

VARIABLE_KEY = "closeout_identity_map"
KINDS = ("client", "project", "task", "user")
SOURCES = ("harvest", "toggl", "clockify")


class IdentityMapError(ValueError):
    pass


def parse(config: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(source, kind, source_id, key) rows; a tracker id mapped to two keys is an error, not a guess."""
    rows: dict[tuple[str, str, str], str] = {}
    for kind, keys in config.items():
        if kind not in KINDS:
            raise IdentityMapError(f"{VARIABLE_KEY}: unknown kind {kind!r} (expected one of {KINDS})")
        if not isinstance(keys, dict):
            raise IdentityMapError(f"{VARIABLE_KEY}.{kind}: expected an object of key -> trackers")
        for key, trackers in keys.items():
            if not isinstance(key, str) or not key.strip() or not isinstance(trackers, dict):
                raise IdentityMapError(f"{VARIABLE_KEY}.{kind}.{key!r}: expected a key and an object of trackers")
            for source, ids in trackers.items():
                if source not in SOURCES:
                    raise IdentityMapError(f"{VARIABLE_KEY}.{kind}.{key}: unknown tracker {source!r}")
                for source_id in ids if isinstance(ids, list) else [ids]:
                    ident = (source, kind, str(source_id))
                    if ident in rows and rows[ident] != key:
                        raise IdentityMapError(
                            f"{VARIABLE_KEY}: {source} {kind} {source_id} is mapped to both {rows[ident]!r} and {key!r}"
                        )
                    rows[ident] = key
    return [(source, kind, source_id, key) for (source, kind, source_id), key in sorted(rows.items())]


def apply(conn: psycopg.Connection, config: dict[str, Any]) -> int:
    """Replace the mapping with ``config`` in one transaction; returns the number of mapped ids."""
    rows = parse(config)
    with conn.transaction():
        conn.execute("DELETE FROM closeout_data.identity_map")
        if rows:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO closeout_data.identity_map (source, kind, source_id, key) VALUES (%s, %s, %s, %s)",
                    rows,
                )
    return len(rows)


def apply_from_variable(conn: psycopg.Connection) -> int | None:
    """Apply the Variable when it is set; None when it is not (the mapping then stays as it is)."""
    from airflow.sdk import Variable

    try:
        value = Variable.get(VARIABLE_KEY, default=None)
    except Exception:
        return None
    if not value:
        return None
    config = json.loads(value) if isinstance(value, str) else value
    if not isinstance(config, dict):
        raise IdentityMapError(f"{VARIABLE_KEY} must be a JSON object")
    return apply(conn, config)
