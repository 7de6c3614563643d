"""One-shot commands give up on an unreachable peer after a bounded time, naming it."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from harness import ConsulDevAgent
from tests.integration.support import run_registrator


def _resync(*args: str, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = run_registrator("--resync", *args, env=env, isolated=False)
    return done, time.monotonic() - started


def test_resync_gives_up_on_an_unreachable_docker_engine(
    consul: ConsulDevAgent, tmp_path: Path
) -> None:
    socket = tmp_path / "no-docker.sock"
    done, seconds = _resync(
        "--give-up-after", "2", consul.uri, env={"DOCKER_HOST": f"unix://{socket}"}
    )

    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("registrator: error: cannot reach the Docker engine"), done.stderr
    assert seconds < 30  # bounded by --give-up-after, not retried forever


def test_resync_gives_up_on_an_unreachable_registry(tmp_path: Path) -> None:
    done, _ = _resync("--give-up-after", "1", "consul://127.0.0.1:9", env={})

    assert done.returncode == 1
    assert "registrator: error:" in done.stderr
    assert "127.0.0.1:9" in done.stderr.strip().splitlines()[-1]
