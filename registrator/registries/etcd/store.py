"""etcd v3 as a lease store: its JSON gateway (`/v3/kv/*`, `/v3/lease/*`) over `wire`.

Keys and values go in base64; lease IDs and revisions are int64, which the gateway sends as
JSON strings. Conditional puts and deletes are one transaction each. A registrator's lease is
recorded in its owner record `registrator/owners<PREFIX>/<host identity>` (outside every
`/...` prefix, so no reader of the service keys sees it), itself on the lease.
"""

from __future__ import annotations

import base64
import json
import socket
from typing import Any
from urllib.parse import urlsplit

from registrator.core.errors import RegistryUnavailable
from registrator.registries.kv.exchange import failure, send
from registrator.registries.kv.leased import Entry, LeaseLost
from registrator.wire import Connections, Endpoint

#: Owner records live under this (no leading slash: outside any `/...` prefix).
OWNERS_ROOT = "registrator/owners"
#: gRPC status codes the gateway passes on: NotFound (a lease), PermissionDenied, Unauthenticated
_NOT_FOUND, _PERMISSION_DENIED, _UNAUTHENTICATED = 5, 7, 16


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _text(data: Any) -> str:
    return base64.b64decode(str(data or "")).decode(errors="replace")


def _prefix_end(prefix: str) -> str:
    """The end of the range of keys starting with `prefix` (its last byte plus one)."""
    raw = prefix.encode()
    return base64.b64encode(raw[:-1] + bytes([raw[-1] + 1])).decode()


def _entry(data: dict[str, Any]) -> Entry:
    lease = int(data.get("lease") or 0)
    return Entry(
        key=_text(data.get("key")),
        value=_text(data.get("value")),
        lease=str(lease) if lease else "",
        version=int(data.get("mod_revision") or 0),
    )


def _put(key: str, value: str, lease: str) -> list[dict[str, Any]]:
    return [{"request_put": {"key": _b64(key), "value": _b64(value), "lease": int(lease or 0)}}]


class EtcdStore:
    """One etcd endpoint, and the prefix whose owner records it keeps."""

    def __init__(self, base_url: str, *, prefix: str, timeout: float = 10) -> None:
        self.base_url = base_url
        self._prefix = prefix
        self._http = Connections(Endpoint(base_url), timeout=timeout)

    def owner_key(self, owner: str) -> str:
        return f"{OWNERS_ROOT}{self._prefix}/{owner}"

    def recorded(self, owner: str) -> list[tuple[str, int]]:
        data = self._send("/v3/kv/range", {"key": _b64(self.owner_key(owner))})
        kvs = data.get("kvs") or ()
        lease = _entry(kvs[0]).lease if kvs else ""
        # a keepalive says whether it lives, with which TTL, and gives it a full TTL again
        ttl = self._keepalive(lease) if lease else 0
        return [(lease, ttl)] if ttl > 0 else []

    def grant(self, owner: str, ttl: int) -> str:
        lease = str(int(self._send("/v3/lease/grant", {"TTL": ttl})["ID"]))
        record = json.dumps({"lease": lease, "prefix": self._prefix, "ttl": ttl})
        self._send("/v3/kv/put", _put(self.owner_key(owner), record, lease)[0]["request_put"])
        return lease

    def keep_alive(self, lease: str) -> bool:
        return self._keepalive(lease) > 0

    def scan(self, root: str) -> list[Entry]:
        data = self._send("/v3/kv/range", {"key": _b64(root), "range_end": _prefix_end(root)})
        return [_entry(kv) for kv in data.get("kvs") or ()]

    def create(self, key: str, value: str, *, lease: str) -> Entry | None:
        compare = {"key": _b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": 0}
        failed = [{"request_range": {"key": _b64(key)}}]
        data = self._txn(compare, _put(key, value, lease), failed)
        if data.get("succeeded"):
            return None
        ranges = [r.get("response_range") or {} for r in data.get("responses") or ()]
        kvs = [kv for r in ranges for kv in r.get("kvs") or ()]
        if not kvs:
            raise RegistryUnavailable(f"{key} changed while it was written; trying again")
        return _entry(kvs[0])

    def replace(self, entry: Entry, value: str, *, lease: str) -> bool:
        compare = {"key": _b64(entry.key), "target": "MOD", "result": "EQUAL"}
        compare["mod_revision"] = str(entry.version)
        return bool(self._txn(compare, _put(entry.key, value, lease), []).get("succeeded"))

    def delete(self, entry: Entry) -> None:
        lease = int(entry.lease or 0)
        compare = {"key": _b64(entry.key), "target": "LEASE", "result": "EQUAL", "lease": lease}
        self._txn(compare, [{"request_delete_range": {"key": _b64(entry.key)}}], [])

    def advertise_address(self) -> str:
        """The address this host reaches etcd from: where its published ports are registered
        when `-ip` is not given (etcd has no notion of the host's address)."""
        parts = urlsplit(self.base_url)
        try:
            infos = socket.getaddrinfo(parts.hostname, parts.port, type=socket.SOCK_DGRAM)
            family, _, _, _, address = infos[0]
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                probe.connect(address)
                return str(probe.getsockname()[0])
        except (OSError, IndexError) as e:
            raise RegistryUnavailable(f"etcd {parts.netloc}: no route: {e}") from e

    def ping(self, *, timeout: float) -> None:
        """Returns when etcd answers its version within `timeout`."""
        self._send("/version", None, method="GET", timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def _keepalive(self, lease: str) -> int:
        """Refresh `lease`; its TTL in seconds, 0 when it no longer exists."""
        try:
            data = self._send("/v3/lease/keepalive", {"ID": int(lease)})
        except LeaseLost:
            return 0
        return int((data.get("result") or {}).get("TTL") or 0)

    def _txn(
        self, compare: dict[str, Any], success: list[dict[str, Any]], failed: list[dict[str, Any]]
    ) -> dict[str, Any]:
        body = {"compare": [compare], "success": success, "failure": failed}
        return self._send("/v3/kv/txn", body)

    def _send(
        self, path: str, body: Any, *, method: str = "POST", timeout: float | None = None
    ) -> dict[str, Any]:
        answer = send(self._http, method, path, payload=body, timeout=timeout)
        try:
            data = answer.json() or {}
        except ValueError:
            data = {}
        if answer.ok and isinstance(data, dict) and "error" not in data:
            return data
        raise _failure(path, answer.status, data, text=answer.text)


def _failure(path: str, status: int, data: Any, *, text: str) -> Exception:
    """The exception for an etcd error answer (the gateway puts errors in the body too)."""
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):  # a streaming endpoint's error
        data, error = error, error.get("message")
    code = int(data.get("code") or data.get("grpc_code") or 0) if isinstance(data, dict) else 0
    detail = f"etcd {path}: {status} {str(error or text).strip()[:200]}"
    if code == _NOT_FOUND:
        return LeaseLost(detail)
    if code in {_PERMISSION_DENIED, _UNAUTHENTICATED}:
        return failure(403, detail)
    return failure(status or 500, detail)
