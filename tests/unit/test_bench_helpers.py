"""The benchmark's helpers: percentiles, the counting proxy's records, /proc and log parsing."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from benchmarks.process import footprint, log_records, quiet_resyncs, record_time
from benchmarks.proxy import CountingProxy, Exchange, counts, service_named
from benchmarks.stats import Summary, percentile


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([5.0], 99, 5.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.5),
        ([4.0, 1.0, 3.0, 2.0], 0, 1.0),
        ([4.0, 1.0, 3.0, 2.0], 100, 4.0),
        ([float(i) for i in range(1, 101)], 90, 90.1),
        ([float(i) for i in range(1, 101)], 99, 99.01),
    ],
)
def test_percentile_interpolates_between_ranks(
    values: list[float], q: float, expected: float
) -> None:
    assert percentile(values, q) == pytest.approx(expected)


@pytest.mark.parametrize(("values", "q"), [([], 50), ([1.0], 101), ([1.0], -1)])
def test_percentile_refuses_what_has_no_answer(values: list[float], q: float) -> None:
    with pytest.raises(ValueError, match="percentile"):
        percentile(values, q)


def test_summary_reports_count_and_maximum() -> None:
    summary = Summary.of([3.0, 1.0, 2.0])

    assert (summary.count, summary.p50, summary.maximum) == (3, 2.0, 3.0)
    assert summary.text().startswith("2.0 / ")


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    [
        ("PUT", "/v1/agent/service/register", b'{"ID": "h:web:80"}', "h:web:80"),
        ("PUT", "/v1/agent/service/register", b"not json", ""),
        ("PUT", "/v1/agent/service/deregister/h%3Aweb%3A80", b"", "h:web:80"),
        ("GET", "/v1/agent/services", b"", ""),
    ],
)
def test_the_service_a_write_names(method: str, path: str, body: bytes, expected: str) -> None:
    assert service_named(method, path, body) == expected


def test_counts_group_deregisters_by_endpoint() -> None:
    exchanges = [
        Exchange("PUT", "/v1/agent/service/deregister/a", 200, 0, 1, "a"),
        Exchange("PUT", "/v1/agent/service/deregister/b", 200, 0, 1, "b"),
        Exchange("GET", "/v1/agent/services", 200, 0, 1),
    ]

    assert counts(exchanges) == {
        "PUT /v1/agent/service/deregister/:id": 2,
        "GET /v1/agent/services": 1,
    }
    assert [e.write for e in exchanges] == [True, True, False]


class _Upstream(BaseHTTPRequestHandler):
    """Answers every request with its own method, path and body, as JSON."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status = 404 if self.path.endswith("/missing") else 200
        answer = json.dumps({"method": self.command, "path": self.path, "body": body.decode()})
        payload = answer.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_PUT = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def proxy() -> Iterator[CountingProxy]:
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    host, port = upstream.server_address[:2]
    counting = CountingProxy(f"{host!s}:{port}").start()
    yield counting
    counting.stop()
    upstream.shutdown()
    upstream.server_close()


def test_proxy_forwards_and_records_each_exchange(proxy: CountingProxy) -> None:
    with httpx.Client(base_url=f"http://{proxy.address}") as client:
        got = client.get("/v1/agent/services", params={"filter": "x"}).json()
        client.put("/v1/agent/service/register", json={"ID": "h:web:80"})
        mark = proxy.mark()
        client.put("/v1/agent/service/deregister/h:web:80")
        missing = client.get("/v1/agent/missing")

    assert got == {"method": "GET", "path": "/v1/agent/services?filter=x", "body": ""}
    assert missing.status_code == 404
    assert [(e.method, e.path, e.status) for e in proxy.exchanges()] == [
        ("GET", "/v1/agent/services", 200),
        ("PUT", "/v1/agent/service/register", 200),
        ("PUT", "/v1/agent/service/deregister/h:web:80", 200),
        ("GET", "/v1/agent/missing", 404),
    ]
    assert len(proxy.exchanges(since=mark)) == 2
    assert proxy.answered("h:web:80", register=True) is not None
    assert proxy.answered("h:web:80", register=False) is not None
    assert proxy.answered("h:other:80", register=True) is None


def test_footprint_of_this_process_is_read_from_proc() -> None:
    mine = footprint(os.getpid())

    assert mine.peak_rss_mb > 1
    assert mine.cpu_seconds > 0


def test_log_records_keep_json_lines_and_their_time() -> None:
    text = "\n".join(
        [
            '{"time": "2026-01-02T03:04:05.250000+00:00", "event": "reconcile.done", "ms": 1.5}',
            "Traceback (most recent call last):",
            "{not json",
        ]
    )

    (record,) = log_records(text)

    assert record["ms"] == 1.5
    assert record_time(record) == 1767323045.25


def test_quiet_resyncs_leave_out_start_up_and_those_after_a_docker_event() -> None:
    def done(scope: str, n: int) -> dict[str, Any]:
        return {"event": "reconcile.done", "scope": scope, "n": n}

    event = {"event": "engine.event", "happened": "exited"}
    records = [
        done("full", 0),  # start-up
        done("full", 1),
        event,
        done("containers", 2),
        done("full", 3),
        event,
        done("full", 4),
        done("agent", 5),
        done("full", 6),
    ]

    assert [r["n"] for r in quiet_resyncs(records)] == [1, 3, 6]
