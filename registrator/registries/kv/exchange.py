"""One JSON request to a key-value store over `wire.Connections`, and the one table that turns
the store's HTTP status into a registry error (etcd's gateway and Consul KV alike)."""

from __future__ import annotations

import json
from typing import Any

from registrator.core.errors import (
    RegistryDenied,
    RegistryError,
    RegistryRefused,
    RegistryUnavailable,
)
from registrator.wire import TRANSPORT_ERRORS, Answer, Connections


def send(
    http: Connections,
    method: str,
    path: str,
    *,
    payload: Any = None,
    timeout: float | None = None,
) -> Answer:
    """The store's answer, whatever its status; `RegistryUnavailable` when none came."""
    body = None if payload is None else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"} if body is not None else {}
    try:
        return http.request(method, path, body=body, headers=headers, timeout=timeout)
    except TRANSPORT_ERRORS as e:
        where = http.endpoint.base_url.rstrip("/")
        raise RegistryUnavailable(f"{method} {where}{path}: {e or type(e).__name__}") from e


def failure(status: int, detail: str) -> RegistryError:
    """The error for an answer that is not a success: a permission is missing (not retried),
    what was sent is refused (not retried), or the store is not coping (retried)."""
    if status in {401, 403}:
        return RegistryDenied(detail)
    if status == 400:
        return RegistryRefused(detail)
    if status >= 500:
        return RegistryUnavailable(detail)
    return RegistryError(detail)
