"""`python -m benchmarks.profile FILE [--top 25] [--under FUNCTION]`: what a py-spy profile says.

`scripts/bench.sh --profile` leaves py-spy's collapsed stacks (`--format raw`: one line per
stack, frames separated by `;`, then the sample count) of registrator in
WORKDIR/profile-registrator.txt. This prints the share of samples each function is on the
stack for (inclusive) and at the top of (self), optionally only within the samples that pass
through FUNCTION (e.g. `Reconciler.changes`, to see what an event's reconcile spends on).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

_FRAME = re.compile(r"^(?P<name>.*?) \((?P<file>[^:]*)(?::\d+)?\)$")


def frame_name(frame: str) -> str:
    """`Reconciler.changes (registrator/runtime/reconciler.py:66)` -> `Reconciler.changes
    (reconciler.py)`: lines folded, so one function is one name."""
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    return f"{match['name']} ({Path(match['file']).name})"


def stacks(lines: Iterable[str]) -> Iterable[tuple[list[str], int]]:
    """(frames from the root, samples) per collapsed line; the thread frame is dropped."""
    for line in lines:
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [frame_name(f) for f in stack.split(";")]
        if frames and frames[0].startswith("thread ("):
            frames = frames[1:]
        yield frames, int(count)


def shares(lines: Iterable[str], *, under: str = "") -> tuple[int, Counter[str], Counter[str]]:
    """Total samples, inclusive and self samples per function (within `under`, if given)."""
    total, inclusive, own = 0, Counter[str](), Counter[str]()
    for stack, count in stacks(lines):
        frames = stack
        if under:
            hits = [i for i, f in enumerate(stack) if f.startswith(under)]
            if not hits:
                continue
            frames = stack[hits[0] :]
        total += count
        for name in set(frames):
            inclusive[name] += count
        if frames:
            own[frames[-1]] += count
    return total, inclusive, own


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__)
    p.add_argument("file", type=Path)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--under", default="", help="only samples passing through this function")
    args = p.parse_args(argv)
    total, inclusive, own = shares(args.file.read_text().splitlines(), under=args.under)
    if not total:
        print("no samples", file=sys.stderr)
        return 1
    print(f"{total} samples" + (f" under {args.under}" if args.under else ""))
    for title, counter in (("inclusive", inclusive), ("self", own)):
        print(f"\n{title}:")
        for name, count in counter.most_common(args.top):
            print(f"{100 * count / total:6.1f}%  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
