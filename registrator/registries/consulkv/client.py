"""Consul's KV store, transactions and sessions over httpx: the JSON stops here."""

from __future__ import annotations

import base64
from typing import Any

import httpx

from registrator.core.errors import (
    RegistryDenied,
    RegistryError,
    RegistryRefused,
    RegistryUnavailable,
)
from registrator.registries.consul.agent import tls_context
from registrator.registries.consul.target import ConsulTarget


def http_client(target: ConsulTarget, *, timeout: float) -> httpx.Client:
    """An HTTP client for the agent at `target`: its token, TLS settings or unix socket."""
    headers = {"X-Consul-Token": target.token} if target.token else {}
    transport = httpx.HTTPTransport(uds=target.uds) if target.uds else None
    return httpx.Client(
        base_url=target.base_url,
        headers=headers,
        verify=tls_context(target),
        timeout=timeout,
        transport=transport,
    )


class SessionLost(RegistryError):
    """The session a write named is gone (invalidated, or the agent lost it)."""


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class ConsulKVClient:
    """The agent's HTTP API for KV, with the token and TLS settings of `consul://`."""

    def __init__(self, target: ConsulTarget, *, timeout: float = 10) -> None:
        self._http = http_client(target, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def keys(self, root: str) -> list[dict[str, Any]]:
        """Every key under `root`, as Consul lists them (values in base64)."""
        response = self.request(
            "GET", f"/v1/kv/{root}", params={"recurse": "true"}, missing_ok=True
        )
        return [] if response.status_code == 404 else list(response.json() or ())

    def txn(self, operations: list[dict[str, Any]]) -> bool:
        """Run a transaction; False when one of its checks failed (Consul answers 409)."""
        response = self.request("PUT", "/v1/txn", json=operations, conflict_ok=True)
        if response.status_code != 409:
            return True
        errors = (response.json() or {}).get("Errors") or ()
        if any("invalid session" in str(e.get("What", "")).lower() for e in errors):
            raise SessionLost(f"consul txn: {errors}")
        return False

    def request(
        self,
        method: str,
        path: str,
        *,
        missing_ok: bool = False,
        conflict_ok: bool = False,
        **kwargs: Any,
    ) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as e:
            raise RegistryUnavailable(f"{method} {path}: {e or type(e).__name__}") from e
        code = response.status_code
        if response.is_success or (missing_ok and code == 404) or (conflict_ok and code == 409):
            return response
        detail = f"{method} {path}: {code} {response.text.strip()[:200]}"
        if code == 403:
            raise RegistryDenied(detail)
        if code == 400:
            raise RegistryRefused(detail)
        if code >= 500:
            raise RegistryUnavailable(detail)
        raise RegistryError(detail)
