"""Logging setup, done once by the CLI: an event name per line with its fields.

Text: `2026-11-21T08:00:00.000 INFO service.registered service=h:web:80 container=web`.
JSON: one object per line, `{"time": ..., "level": ..., "event": ..., <fields>}`.
"""

from __future__ import annotations

import json
import sys
import traceback
from typing import TYPE_CHECKING, Any, TextIO

from loguru import logger

if TYPE_CHECKING:
    from loguru import Message, Record


def configure(*, level: str = "INFO", fmt: str = "text", stream: TextIO | None = None) -> None:
    out = stream or sys.stderr
    logger.remove()
    if fmt == "json":
        logger.add(_json_sink(out), level=level, format="{message}")
    else:
        logger.add(out, level=level, format=_text_format, colorize=False)


def _fields(record: Record) -> str:
    return "".join(f" {k}={_quote(v)}" for k, v in record["extra"].items() if k != "_kv")


def _quote(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if (not text or any(c in text for c in ' ="')) else text


def _text_format(record: Record) -> str:
    record["extra"]["_kv"] = _fields(record)
    return "{time:YYYY-MM-DDTHH:mm:ss.SSS} {level} {message}{extra[_kv]}\n{exception}"


def _json_sink(out: TextIO) -> Any:
    def sink(message: Message) -> None:
        record = message.record
        entry: dict[str, Any] = {
            "time": record["time"].isoformat(),
            "level": record["level"].name,
            "event": record["message"],
        }
        entry.update(
            {
                k: v if isinstance(v, int | float | bool) else str(v)
                for k, v in record["extra"].items()
            }
        )
        if record["exception"] is not None:
            entry["exception"] = "".join(traceback.format_exception(*record["exception"]))
        out.write(json.dumps(entry) + "\n")
        out.flush()

    return sink
