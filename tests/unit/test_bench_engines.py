"""`python -m benchmarks --engine`: which engines a run measures, one table each."""

from __future__ import annotations

import pytest

from benchmarks.__main__ import parse


def test_without_an_engine_the_run_is_dockers_alone() -> None:
    assert parse([]).engine is None


def test_engines_are_run_in_the_order_given() -> None:
    assert parse(["--engine", "docker", "--engine", "podman"]).engine == ["docker", "podman"]


def test_an_unknown_engine_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse(["--engine", "containerd"])
    assert "invalid choice: 'containerd'" in capsys.readouterr().err
