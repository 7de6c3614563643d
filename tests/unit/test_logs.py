"""Log lines: an event name and its fields, as text or as one JSON object per line."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator

import pytest
from loguru import logger

from registrator.app.logs import configure


@pytest.fixture
def out() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    yield stream
    logger.remove()
    logger.add(sys.stderr)


def test_json_is_one_object_per_line_with_the_event_and_its_fields(out: io.StringIO) -> None:
    configure(fmt="json", stream=out)

    logger.info("service.registered", service="h:web:80", container="web")
    logger.warning("container.bad_declaration", container="shop", key="SERVICE_X", value='a "b"')

    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["event"] == "service.registered"
    assert first["level"] == "INFO"
    assert (first["service"], first["container"]) == ("h:web:80", "web")
    assert "time" in first
    assert second["value"] == 'a "b"'


def test_json_keeps_numbers_and_carries_a_traceback(out: io.StringIO) -> None:
    configure(fmt="json", stream=out)

    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("reconcile.crashed", attempt=3)

    [entry] = (json.loads(line) for line in out.getvalue().splitlines())
    assert entry["attempt"] == 3
    assert "ValueError: boom" in entry["exception"]


def test_text_is_the_event_then_key_value_fields(out: io.StringIO) -> None:
    configure(stream=out)

    logger.info("service.registered", service="h:web:80", container="my web")

    assert (
        out.getvalue()
        .rstrip()
        .endswith('INFO service.registered service=h:web:80 container="my web"')
    )


def test_the_level_filters(out: io.StringIO) -> None:
    configure(level="WARNING", fmt="json", stream=out)

    logger.info("reconcile.done")
    logger.warning("retry.wait")

    assert [json.loads(line)["event"] for line in out.getvalue().splitlines()] == ["retry.wait"]
