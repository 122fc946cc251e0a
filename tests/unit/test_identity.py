"""The identity map: parsed strictly (a tracker id mapped to two keys is refused, not guessed),
applied as a whole, and resolved by the contract view when read."""

from __future__ import annotations

import pytest
from closeout.trackers import identity


def test_parse_flattens_kinds_keys_and_trackers():
    rows = identity.parse({"client": {"client:acme": {"harvest": [42, "43"], "clockify": "5f3e"}}})
    assert rows == [("clockify", "client", "5f3e", "client:acme"), ("harvest", "client", "42", "client:acme"),
                    ("harvest", "client", "43", "client:acme")]  # fmt: skip


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"customer": {}}, "unknown kind"),
        ({"client": {"k": {"jira": ["1"]}}}, "unknown tracker"),
        ({"client": {"": {"harvest": ["1"]}}}, "expected a key"),
        ({"client": {"a": {"harvest": ["1"]}, "b": {"harvest": ["1"]}}}, "mapped to both"),
        ({"client": ["not", "an", "object"]}, "expected an object"),
    ],
)
def test_parse_refuses_ambiguous_or_malformed_maps(config, message):
    with pytest.raises(identity.IdentityMapError, match=message):
        identity.parse(config)


def test_apply_replaces_the_mapping_and_the_view_resolves_it(warehouse):
    from closeout.warehouse.db import connect

    with connect(autocommit=True) as conn:
        assert identity.apply(conn, {"user": {"user:ada": {"harvest": ["7"], "toggl": ["9"]}}}) == 2
        assert identity.apply(conn, {"user": {"user:ada": {"harvest": ["7"]}}}) == 1
    assert warehouse.rows("SELECT source, kind, source_id, key FROM closeout.identity_map") == [
        ("harvest", "user", "7", "user:ada")
    ]
