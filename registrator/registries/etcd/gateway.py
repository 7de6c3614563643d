"""etcd v3's JSON gateway (`/v3/kv/*`, `/v3/lease/*`) over httpx: keys and values in base64.

Only what the registry needs: a range read, conditional puts and deletes in one transaction
each, and leases. Lease IDs and revisions are int64, sent and received as JSON strings.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import httpx

from registrator.core.errors import (
    RegistryDenied,
    RegistryError,
    RegistryRefused,
    RegistryUnavailable,
)

#: gRPC status codes the gateway passes on: NotFound (a lease), PermissionDenied, Unauthenticated
_NOT_FOUND, _PERMISSION_DENIED, _UNAUTHENTICATED = 5, 7, 16


class LeaseNotFound(RegistryError):
    """The lease a write named does not exist (any more): it expired or etcd lost it."""


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: str
    lease: int
    mod_revision: int


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _text(data: Any) -> str:
    return base64.b64decode(str(data or "")).decode(errors="replace")


def _prefix_end(prefix: str) -> str:
    """The end of the range of keys starting with `prefix` (its last byte plus one)."""
    raw = prefix.encode()
    return base64.b64encode(raw[:-1] + bytes([raw[-1] + 1])).decode()


def _kv(data: dict[str, Any]) -> KeyValue:
    return KeyValue(
        key=_text(data.get("key")),
        value=_text(data.get("value")),
        lease=int(data.get("lease") or 0),
        mod_revision=int(data.get("mod_revision") or 0),
    )


class EtcdGateway:
    """One etcd endpoint's JSON gateway."""

    def __init__(self, base_url: str, *, timeout: float = 10) -> None:
        self.base_url = base_url
        self._http = httpx.Client(base_url=base_url, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def version(self, *, timeout: float | None = None) -> str:
        """The server's version; also how readiness asks whether etcd answers."""
        response = self._send("GET", "/version", None, timeout=timeout)
        return str(response.get("etcdserver", ""))

    def range(self, prefix: str) -> tuple[list[KeyValue], int]:
        """Every key starting with `prefix`, and the store's revision."""
        body = {"key": _b64(prefix), "range_end": _prefix_end(prefix)}
        data = self._send("POST", "/v3/kv/range", body)
        revision = int((data.get("header") or {}).get("revision") or 0)
        return [_kv(kv) for kv in data.get("kvs") or ()], revision

    def get(self, key: str) -> KeyValue | None:
        data = self._send("POST", "/v3/kv/range", {"key": _b64(key)})
        kvs = data.get("kvs") or ()
        return _kv(kvs[0]) if kvs else None

    def create(self, key: str, value: str, *, lease: int) -> KeyValue | None:
        """Put `key` only if it does not exist; None when done, else the key as it is."""
        compare = {"key": _b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": 0}
        failure = [{"request_range": {"key": _b64(key)}}]
        data = self._txn(compare, self._put(key, value, lease), failure)
        if data.get("succeeded"):
            return None
        ranges = [r.get("response_range") or {} for r in data.get("responses") or ()]
        kvs = [kv for r in ranges for kv in r.get("kvs") or ()]
        return _kv(kvs[0]) if kvs else None

    def replace(self, key: str, value: str, *, lease: int, mod_revision: int) -> bool:
        """Put `key` only if nobody wrote it since `mod_revision`."""
        compare = {"key": _b64(key), "target": "MOD", "result": "EQUAL"}
        compare["mod_revision"] = str(mod_revision)
        return bool(self._txn(compare, self._put(key, value, lease), []).get("succeeded"))

    def delete(self, key: str, *, lease: int) -> bool:
        """Delete `key` only if it hangs on `lease`; False when it does not (or is gone)."""
        compare = {"key": _b64(key), "target": "LEASE", "result": "EQUAL", "lease": lease}
        success = [{"request_delete_range": {"key": _b64(key)}}]
        return bool(self._txn(compare, success, []).get("succeeded"))

    def put(self, key: str, value: str, *, lease: int) -> None:
        self._send("POST", "/v3/kv/put", self._put(key, value, lease)[0]["request_put"])

    def grant(self, ttl: int) -> int:
        return int(self._send("POST", "/v3/lease/grant", {"TTL": ttl})["ID"])

    def keepalive(self, lease: int) -> int:
        """Refresh `lease`; its TTL in seconds, 0 when it no longer exists."""
        data = self._send("POST", "/v3/lease/keepalive", {"ID": lease})
        return int((data.get("result") or {}).get("TTL") or 0)

    def granted_ttl(self, lease: int) -> int:
        """The TTL `lease` was granted with; 0 when it no longer exists."""
        data = self._send("POST", "/v3/lease/timetolive", {"ID": lease})
        return int(data.get("grantedTTL") or 0) if int(data.get("TTL") or 0) > 0 else 0

    def revoke(self, lease: int) -> None:
        self._send("POST", "/v3/lease/revoke", {"ID": lease}, missing_ok=True)

    @staticmethod
    def _put(key: str, value: str, lease: int) -> list[dict[str, Any]]:
        return [{"request_put": {"key": _b64(key), "value": _b64(value), "lease": lease}}]

    def _txn(
        self, compare: dict[str, Any], success: list[dict[str, Any]], failure: list[dict[str, Any]]
    ) -> dict[str, Any]:
        body = {"compare": [compare], "success": success, "failure": failure}
        return self._send("POST", "/v3/kv/txn", body)

    def _send(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        *,
        timeout: float | None = None,
        missing_ok: bool = False,
    ) -> dict[str, Any]:
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        try:
            response = self._http.request(method, path, json=body, **extra)
        except httpx.TransportError as e:
            raise RegistryUnavailable(f"etcd {path}: {e or type(e).__name__}") from e
        try:
            data: dict[str, Any] = response.json() if response.content else {}
        except ValueError:
            data = {}
        if response.is_success and "error" not in data:
            return data
        _raise(path, response.status_code, data, missing_ok=missing_ok, text=response.text)
        return {}


def _raise(path: str, status: int, data: Any, *, missing_ok: bool, text: str) -> None:
    """The exception for an etcd error answer (the gateway puts errors in the body too)."""
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):  # a streaming endpoint's error
        data, error = error, error.get("message")
    code = int(data.get("code") or 0) if isinstance(data, dict) else 0
    detail = f"etcd {path}: {status} {str(error or text).strip()[:200]}"
    if code == _NOT_FOUND:
        if missing_ok:
            return
        raise LeaseNotFound(detail)
    if code in (_PERMISSION_DENIED, _UNAUTHENTICATED) or status in (401, 403):
        raise RegistryDenied(detail)
    if status == 400:
        raise RegistryRefused(detail)
    if status >= 500 or status == 0:
        raise RegistryUnavailable(detail)
    raise RegistryError(detail)
