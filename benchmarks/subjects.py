"""What the benchmark measures: registrator itself and any peer command, run the same way.

A subject is a command line with placeholders, filled in for each run: `{consul}` (host:port
of the counting proxy in front of the run's Consul agent), `{hostname}` (the host identity the
services are registered under) and `{resync}` (the resync interval, in seconds). A peer is
given as `NAME=COMMAND`, e.g.

    gliderlabs='../shared/anchors/gliderlabs-wrap --hostname {hostname} --ip 127.0.0.1
                --resync-interval {resync} consul://{consul}'

Relative paths in a command are relative to the repository root (where `scripts/bench.sh`
runs). The process is stopped with SIGTERM, and its footprint is read from /proc before.
"""

from __future__ import annotations

import compileall
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.docker_side import Interrupted
from benchmarks.process import Footprint, footprint
from harness import ROOT, stop_process

REGISTRATOR = "registrator"
PLACEHOLDERS = ("consul", "hostname", "resync")


@dataclass(frozen=True, slots=True)
class Subject:
    """A named command line, its placeholders not yet filled in."""

    name: str
    command: tuple[str, ...]
    #: a Python process that py-spy can sample (`--profile`)
    python: bool = False

    def argv(self, *, consul: str, hostname: str, resync: float) -> list[str]:
        values = {"consul": consul, "hostname": hostname, "resync": f"{resync:g}"}
        return [word.format_map(values) for word in self.command]


def registrator_subject(extra: str = "") -> Subject:
    """The project's own daemon, as a user runs it (default log level and format). Its
    bytecode is written before it runs (`compiled`), as an install does."""
    command = [sys.executable, "-m", "registrator", "consul://{consul}", "--hostname"]
    command += ["{hostname}", "--resync-interval", "{resync}", *shlex.split(extra)]
    return Subject(REGISTRATOR, tuple(command), python=True)


def compiled(package: Path) -> None:
    """Write `package`'s bytecode beside it (`__pycache__`, ignored by git), as pip does when
    it installs: a work tree run with PYTHONDONTWRITEBYTECODE would compile every module at
    each start, which a peer's install does not. Current bytecode is left alone."""
    if not compileall.compile_dir(package, quiet=1):
        raise RuntimeError(f"compileall failed in {package}")


def parse_peer(text: str) -> Subject:
    """`NAME=COMMAND` -> a subject; the command is split as a shell would split it."""
    name, sep, command = text.partition("=")
    name = name.strip()
    if not sep or not name or not command.strip():
        raise ValueError(f"--peer wants NAME=COMMAND, got {text!r}")
    if name == REGISTRATOR:
        raise ValueError(f"--peer: the name {REGISTRATOR!r} is taken by the project itself")
    words = tuple(shlex.split(command))
    probe = dict.fromkeys(PLACEHOLDERS, "")
    for word in words:
        try:
            word.format_map(probe)
        except (KeyError, ValueError, IndexError) as e:
            known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
            raise ValueError(f"--peer {name}: {word!r}: placeholders are {known}") from e
    if not any("{consul}" in word for word in words):
        raise ValueError(f"--peer {name}: the command must point at consul://{{consul}}")
    return Subject(name, words, python=runs_python(words[0]))


def runs_python(program: str) -> bool:
    """Whether `program` is a Python interpreter or a script run by one (a venv's console
    script), so that `--profile` samples a peer's daemon as it samples registrator."""
    if Path(program).name.startswith("python"):
        return True
    if "/" not in program:
        return False
    path = Path(program) if Path(program).is_absolute() else ROOT / program
    try:
        with path.open("rb") as script:
            first = script.readline(200)
    except OSError:
        return False
    return first.startswith(b"#!") and b"python" in first


class SubjectProcess:
    """One run of a subject: started, checked, measured and stopped."""

    def __init__(self, argv: list[str], *, log_path: Path, profile: Path | None = None) -> None:
        self.argv = argv
        self.log_path = log_path
        self._profile = profile
        self._process: subprocess.Popen[bytes] | None = None
        self._profiler: subprocess.Popen[bytes] | None = None
        #: wall-clock time of the start, in nanoseconds since the epoch
        self.started_ns = 0

    def start(self) -> SubjectProcess:
        with self.log_path.open("ab") as log:
            self.started_ns = time.time_ns()
            self._process = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
            )
        if self._profile is not None:
            self._profiler = _sample(self.pid, self._profile)
        return self

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def footprint(self) -> Footprint:
        return footprint(self.pid)

    def check_alive(self) -> None:
        process = self._process
        if process is not None and process.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise Interrupted(f"{self.argv[0]} exited {process.returncode}: {tail}")

    def stop(self) -> int:
        if self._process is None:
            return 0
        code = stop_process(self._process)
        self._process = None
        if self._profiler is not None:
            self._profiler.wait(timeout=60)  # py-spy writes its file once the process is gone
        return code


def _sample(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling `pid` without pausing it, only the thread holding the GIL (where the
    process spends its CPU); collapsed stacks, one line per stack, in `out`."""
    py_spy = Path(sys.executable).with_name("py-spy")
    args = [str(py_spy), "record", "--pid", str(pid), "--rate", "500", "--nonblocking", "--gil"]
    args += ["--threads", "--format", "raw", "--output", str(out)]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
