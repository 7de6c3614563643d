"""`-useIpFromLabel LABEL`: the address a container's label names, replacing the usual one."""

from __future__ import annotations

import ipaddress

from registrator.core.model import Container
from registrator.core.policy import Findings

#: the longest prefix length a `/NN` suffix may carry (IPv6)
_MAX_PREFIX = 128


def label_address(container: Container, label: str, found: Findings) -> str:
    """-useIpFromLabel: the label's address, or "" (and a problem) when it has none."""
    if not label:
        return ""
    raw = container.labels.get(label)
    if raw is None:
        found.problem(label, "", "label missing (-useIpFromLabel): the usual address is used")
        return ""
    address = address_from_label(raw)
    if address is None:
        reason = "not an IP address (a /NN suffix is allowed): the usual address is used"
        found.problem(label, raw, reason)
    return address or ""


def address_from_label(value: str) -> str | None:
    """`10.1.2.3/24` -> `10.1.2.3`; None when `value` is not an address with an optional /NN."""
    text, slash, prefix = value.strip().partition("/")
    if slash and not (prefix.isascii() and prefix.isdigit() and int(prefix) <= _MAX_PREFIX):
        return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None
