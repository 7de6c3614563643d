"""Fixtures the unit tests share: the fake engine and registry, fresh for each test.

Helpers that are not fixtures are in tests/support.py (and the fakes in tests/unit/fakes.py);
a test file that needs a `docker` already holding containers defines its own.
"""

from __future__ import annotations

import pytest

from tests.unit.fakes import FakeConsul, FakeDocker


@pytest.fixture
def docker() -> FakeDocker:
    return FakeDocker()


@pytest.fixture
def consul() -> FakeConsul:
    return FakeConsul()
