"""The one boolean parser: every yes/no a user writes (labels, options, CONSUL_* variables).

One truth set for all of them, a superset of Go's `strconv.ParseBool` (gliderlabs' `-flag=t`)
and of what people write in labels (`yes`, `on`). Anything else is not a boolean: callers
decide whether that is an error or, as gliderlabs does for `SERVICE_IGNORE`, a yes.
"""

from __future__ import annotations

TRUE = frozenset({"1", "t", "true", "y", "yes", "on"})
FALSE = frozenset({"0", "f", "false", "n", "no", "off"})


def parse_flag(text: str) -> bool | None:
    """True, False, or None when `text` is neither (case and surrounding blanks ignored)."""
    value = text.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    return None
