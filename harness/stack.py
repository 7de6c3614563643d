"""Where the stack that scripts/stack.sh brings up lives, and what marks the tests' containers."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: what scripts/stack.sh fetches; REGISTRATOR_CACHE moves it, for this code as for the script
CACHE = Path(os.environ.get("REGISTRATOR_CACHE") or ROOT / ".cache")
TEST_IMAGE = os.environ.get("REGISTRATOR_TEST_IMAGE", "registrator-test/busybox:latest")
TEST_LABEL = "org.registrator.test.session"


def cached_binary(package: str) -> Path | None:
    """`package`'s binary as scripts/stack.sh unpacks a Debian 11 package, if it is there."""
    path = CACHE / package / "usr" / "bin" / package
    return path if path.exists() else None
