"""Catalog mode's stand-in for the agent's TTL check API, on the `--metrics-addr` listener.

An application with a `SERVICE_CHECK_TTL` check reports as it would to a Consul agent:
`PUT /v1/agent/check/pass/<check-id>?note=...` (and `warn`, `fail`), or
`PUT /v1/agent/check/update/<check-id>` with `{"Status": ..., "Output": ...}`; the check ID is
`service:<service-id>`. With no agent on the host, registrator answers these requests itself,
for the TTL checks of the services it registered (`runtime.probes.ProbeRunner.report`): 200 for
a report taken, 404 for a check it does not drive, 400 for a report it cannot read. A bad
report is logged once per check and problem (an application retrying every few seconds must
not flood the log) and costs nothing else.
"""

from __future__ import annotations

import threading
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from loguru import logger

from registrator.core.ttl import BadReport, Report, report_of
from registrator.runtime.probes import UnknownCheck

#: the agent API's path for a check's reports
PREFIX = "/v1/agent/check/"
#: the longest body read (a report's output is cut at 4 KiB anyway)
MAX_BODY = 65536
#: distinct bad reports remembered as already logged (then forgotten all at once)
_REMEMBERED = 1024


class Reports(Protocol):
    def report(self, check: str, report: Report) -> None: ...


class CheckReports:
    """Answers the check API's requests with `reports`, and logs each bad one once."""

    def __init__(self, reports: Reports) -> None:
        self._reports = reports
        self._lock = threading.Lock()
        self._said: set[tuple[str, str]] = set()

    def answer(self, target: str, body: bytes) -> tuple[int, str] | None:
        """The status and text for `PUT target`; None when it is not the check API."""
        parts = urlsplit(target)
        if not parts.path.startswith(PREFIX):
            return None
        verb, _, check = parts.path.removeprefix(PREFIX).partition("/")
        check = unquote(check)
        note = (parse_qs(parts.query).get("note") or [""])[0]
        try:
            self._reports.report(check, report_of(verb, note=note, body=body))
        except BadReport as e:
            return self._refused(400, check, str(e))
        except UnknownCheck:
            why = "not a TTL check of a service registrator registered here"
            return self._refused(404, check, why)
        return 200, ""

    def _refused(self, status: int, check: str, why: str) -> tuple[int, str]:
        with self._lock:
            new = (check, why) not in self._said
            if len(self._said) >= _REMEMBERED:
                self._said.clear()
            self._said.add((check, why))
        if new:
            logger.warning("check.report_refused", check=check, status=status, error=why)
        return status, f"check {check!r}: {why}\n"


def body_length(header: str | None) -> int | None:
    """A request's Content-Length, None when it is not a length registrator reads."""
    if header is None:
        return 0
    if not header.strip().isdigit() or int(header) > MAX_BODY:
        return None
    return int(header)
