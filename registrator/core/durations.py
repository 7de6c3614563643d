"""Durations exactly as Consul reads them: Go's `time.ParseDuration`, into int64 nanoseconds.

A regular expression can say whether a value looks like `1m30s`; only the arithmetic says
whether Consul can hold it. `99999999999999999999s` looks fine and overflows Go's int64, and
`0.5ns` looks fine and rounds down to nothing; Consul refuses both (HTTP 400). So a value is
worked out here the way Go does it, digit by digit and with the same float step for fractions,
and judged by its result: at least 1ns, at most `MAXIMUM`.
"""

from __future__ import annotations

#: Go's time.Duration is an int64 of nanoseconds.
MAX_NANOSECONDS = 2**63 - 1
#: MAX_NANOSECONDS written as Go writes it.
MAXIMUM = "2562047h47m16.854775807s"
_UNITS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign
    "\u03bcs": 1_000,  # Greek small letter mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_LIMIT = 1 << 63
_SYNTAX = "not a duration in Consul's syntax (500ms, 10s, 1m30s)"
_TOO_LONG = f"longer than Consul's longest duration ({MAXIMUM})"


class DurationError(ValueError):
    """A value Consul would not take as a positive duration; the message says why."""


def nanoseconds(text: str) -> int:
    """The positive number of nanoseconds `text` means to Consul, or `DurationError`.

    No sign is taken (a negative duration means nothing here, `+` is noise), nor a bare `0`.
    """
    rest = text
    if not rest:
        raise DurationError(_SYNTAX)
    total = 0
    while rest:
        value, rest = _term(rest)
        total += value
        if total > _LIMIT:
            raise DurationError(_TOO_LONG)
    if total > MAX_NANOSECONDS:
        raise DurationError(_TOO_LONG)
    if total == 0:
        raise DurationError("not a positive duration (at least 1ns)")
    return total


def _term(text: str) -> tuple[int, str]:
    """One `<number><unit>` at the start of `text`: its nanoseconds and what follows."""
    whole, rest = _digits(text)
    fraction, scale, has_fraction = 0, 1.0, False
    if rest.startswith("."):
        fraction, scale, after = _fraction(rest[1:])
        has_fraction, rest = len(after) < len(rest) - 1, after
    if whole is None and not has_fraction:
        raise DurationError(_SYNTAX)
    unit_end = next((i for i, c in enumerate(rest) if c == "." or _is_digit(c)), len(rest))
    unit = _UNITS.get(rest[:unit_end])
    if unit is None:
        raise DurationError(_SYNTAX)
    whole = whole or 0
    if whole > _LIMIT // unit:
        raise DurationError(_TOO_LONG)
    value = whole * unit
    if fraction:
        value += int(float(fraction) * (float(unit) / scale))
    if value > _LIMIT:
        raise DurationError(_TOO_LONG)
    return value, rest[unit_end:]


def _digits(text: str) -> tuple[int | None, str]:
    """Leading digits as Go's `leadingInt` reads them; None when there are none."""
    end = _digits_end(text)
    if end == 0:
        return None, text
    significant = text[:end].lstrip("0")
    if len(significant) > len(str(_LIMIT)) or int(significant or "0") > _LIMIT:
        raise DurationError(_TOO_LONG)
    return int(significant or "0"), text[end:]


def _fraction(text: str) -> tuple[int, float, str]:
    """Digits after the point as Go's `leadingFraction` reads them: once one more would
    overflow an int64 the rest are dropped, and `scale` is 10 to the number of digits kept."""
    end = _digits_end(text)
    value, scale = 0, 1.0
    for c in text[:end]:
        following = value * 10 + int(c)
        if value > (_LIMIT - 1) // 10 or following > _LIMIT:
            break
        value, scale = following, scale * 10
    return value, scale, text[end:]


def _digits_end(text: str) -> int:
    return next((i for i, c in enumerate(text) if not _is_digit(c)), len(text))


def _is_digit(c: str) -> bool:
    return "0" <= c <= "9"
