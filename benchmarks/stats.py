"""Summaries of timing samples: percentiles the way most tools report them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0-100) of `values`, interpolating linearly between ranks.

    The same definition as numpy's default, so figures compare with other tools' reports.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} outside 0..100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True, slots=True)
class Summary:
    """p50 / p90 / p99 / max of a set of samples, in the samples' unit."""

    count: int
    p50: float
    p90: float
    p99: float
    maximum: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        return cls(
            count=len(values),
            p50=percentile(values, 50),
            p90=percentile(values, 90),
            p99=percentile(values, 99),
            maximum=max(values),
        )

    def text(self, unit: str = "ms") -> str:
        return (
            f"{self.p50:.1f} / {self.p90:.1f} / {self.p99:.1f} {unit} "
            f"(max {self.maximum:.1f}, n={self.count})"
        )


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan
