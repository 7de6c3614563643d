"""The catalog node registrator owns: its marks, and telling it from someone else's node."""

from __future__ import annotations

import pytest

from registrator.registries.catalog.node import (
    NODE_META_EXTERNAL,
    NODE_META_HOST,
    is_registrators,
    node_body,
)


def test_the_node_is_named_and_marked_by_the_host_identity() -> None:
    body = node_body("host-1", "127.0.0.5")

    assert body["Node"] == "host-1"
    assert body["Address"] == "127.0.0.5"
    assert body["NodeMeta"][NODE_META_HOST] == "host-1"
    assert body["NodeMeta"][NODE_META_EXTERNAL] == "true"


@pytest.mark.parametrize(
    ("node", "host", "ours"),
    [
        ({"Node": "h", "Meta": {"external-node": "true", "registrator_host": "h"}}, "h", True),
        ({"Node": "h", "Meta": {"external-node": "true", "registrator_host": "h"}}, None, True),
        ({"Node": "h", "Meta": {"external-node": "true", "registrator_host": "x"}}, "h", False),
        ({"Node": "h", "Meta": {"consul-network-segment": ""}}, "h", False),
        ({"Node": "h", "Meta": None}, "h", False),
        (None, "h", False),
    ],
)
def test_only_a_node_with_registrators_marks_is_registrators(
    node: dict[str, object] | None, host: str | None, ours: bool
) -> None:
    assert is_registrators(node, host) is ours
