"""Metrics, the status endpoints (a real HTTP server on loopback) and progress lines."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from loguru import logger
from pydantic import ValidationError

from registrator.app.listen import parse_listen_address
from registrator.app.metrics import Metrics
from registrator.app.progress import ProgressLog
from registrator.app.settings import Settings
from registrator.app.status import Readiness, StatusServer
from registrator.core.errors import ConfigError, RegistryUnavailable


def get(server: StatusServer, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.read().decode()


class Switch:
    """A probe that fails until it is turned on."""

    def __init__(self) -> None:
        self.up = False

    def __call__(self) -> None:
        if not self.up:
            raise RegistryUnavailable("GET /v1/status/leader: connection refused")


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def consul_probe() -> Switch:
    return Switch()


@pytest.fixture
def server(metrics: Metrics, consul_probe: Switch) -> Iterator[StatusServer]:
    readiness = Readiness(metrics, {"docker": lambda: None, "consul": consul_probe})
    running = StatusServer(("127.0.0.1", 0), metrics=metrics, readiness=readiness).start()
    yield running
    running.close()


def test_metrics_count_what_the_observer_is_told(metrics: Metrics, server: StatusServer) -> None:
    metrics.written("service.registered")
    metrics.written("service.registered")
    metrics.written("service.updated")
    metrics.written("service.deregistered")
    metrics.failed("registry.write_failed")
    metrics.reconciled(scope="full", seconds=0.2, ok=True)
    metrics.owned(7)
    metrics.reconnected("docker")
    metrics.reconnected("registry")

    status, text = get(server, "/metrics")

    assert status == 200
    for line in (
        "registrator_registrations_total 2.0",
        "registrator_updates_total 1.0",
        "registrator_deregistrations_total 1.0",
        'registrator_errors_total{kind="registry.write_failed"} 1.0',
        'registrator_errors_total{kind="consul.write_failed"} 1.0',  # the old name, one release
        'registrator_errors_total{kind="registry.permission_denied"} 0.0',
        'registrator_errors_total{kind="consul.permission_denied"} 0.0',
        'registrator_errors_total{kind="reconcile.failed"} 0.0',
        'registrator_reconcile_duration_seconds_count{scope="full"} 1.0',
        'registrator_reconcile_duration_seconds_bucket{le="0.25",scope="full"} 1.0',
        'registrator_reconnects_total{peer="docker"} 1.0',
        'registrator_reconnects_total{peer="registry"} 1.0',
        'registrator_reconnects_total{peer="consul"} 1.0',
        "registrator_services_owned 7.0",
        'registrator_build_info{version="',
    ):
        assert line in text, line


def test_healthz_answers_while_readyz_waits_for_the_first_reconcile_and_both_peers(
    metrics: Metrics, server: StatusServer, consul_probe: Switch
) -> None:
    assert get(server, "/healthz") == (200, "ok\n")
    assert get(server, "/readyz") == (
        503,
        "first-reconcile: not completed yet\nconsul: GET /v1/status/leader: connection refused\n",
    )

    metrics.reconciled(scope="full", seconds=0.1, ok=False)
    consul_probe.up = True
    assert get(server, "/readyz")[0] == 503

    metrics.reconciled(scope="full", seconds=0.1, ok=True)
    assert get(server, "/readyz") == (200, "ok\n")

    consul_probe.up = False
    assert get(server, "/readyz")[0] == 503


def test_only_a_complete_full_reconcile_makes_ready(metrics: Metrics) -> None:
    metrics.reconciled(scope="agent", seconds=0.1, ok=True)
    metrics.reconciled(scope="containers", seconds=0.1, ok=True)
    metrics.reconciled(scope="full", seconds=0.1, ok=False)
    assert not metrics.first_reconcile.is_set()

    metrics.reconciled(scope="full", seconds=0.1, ok=True)
    assert metrics.first_reconcile.is_set()


def test_unknown_paths_are_404(server: StatusServer) -> None:
    assert get(server, "/")[0] == 404


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9181", ("127.0.0.1", 9181)),
        (":9181", ("", 9181)),
        ("0.0.0.0:1", ("0.0.0.0", 1)),
        ("[::1]:9181", ("::1", 9181)),
        ("localhost:80", ("localhost", 80)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
    ],
)
def test_listen_addresses(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen_address(text) == expected


@pytest.mark.parametrize("text", ["9181", "host:", "host:http", "h:70000", "h:-1", "[zz:1]:1"])
def test_bad_listen_addresses_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_listen_address(text)


def test_a_bad_metrics_addr_is_a_settings_error() -> None:
    with pytest.raises(ValidationError, match="not HOST:PORT"):
        Settings(metrics_addr="9181")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def progress_lines() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(
        lambda m: lines.append("{stage} {done}/{total}".format(**m.record["extra"])),
        filter=lambda r: r["message"] == "reconcile.progress",
    )
    yield lines
    logger.remove(sink)


def test_progress_is_printed_every_n_items_and_at_the_end(progress_lines: list[str]) -> None:
    progress = ProgressLog(every=100, clock=Clock())

    for done in range(1, 251):
        progress.progress("inspect", done=done, total=250)

    assert progress_lines == ["inspect 100/250", "inspect 200/250", "inspect 250/250"]


def test_progress_is_printed_every_second_on_a_slow_pass(progress_lines: list[str]) -> None:
    clock = Clock()
    progress = ProgressLog(every=100, seconds=1.0, clock=clock)

    for done in range(1, 11):
        clock.now = done * 0.4
        progress.progress("write", done=done, total=10)

    assert progress_lines == ["write 4/10", "write 7/10", "write 10/10"]


def test_short_passes_print_no_progress(progress_lines: list[str]) -> None:
    progress = ProgressLog(every=100, clock=Clock())

    for done in range(1, 51):
        progress.progress("inspect", done=done, total=50)

    assert progress_lines == []
