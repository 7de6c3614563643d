"""The lease stores' translations (etcd, Consul KV): the parts with no store behind them.

What a store's answer becomes decides whether the daemon retries it: a refusal or a missing
permission is logged once and not retried, a store not coping is retried, and a lost lease
makes the registry take a new one. The stores themselves run against a real etcd and a real
Consul in tests/integration (test_etcd.py, test_consulkv.py, test_registry_contract.py).
"""

from __future__ import annotations

import base64

import pytest

from registrator.core.errors import (
    RegistryDenied,
    RegistryError,
    RegistryRefused,
    RegistryUnavailable,
)
from registrator.registries.consulkv.store import _path, _seconds
from registrator.registries.etcd.store import _failure, _prefix_end
from registrator.registries.kv.exchange import failure, send
from registrator.registries.kv.leased import LeaseLost
from registrator.wire import Connections, Endpoint


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, RegistryRefused),
        (401, RegistryDenied),
        (403, RegistryDenied),
        (500, RegistryUnavailable),
        (503, RegistryUnavailable),
    ],
)
def test_one_table_turns_a_status_into_the_registry_error(
    status: int, error: type[RegistryError]
) -> None:
    assert type(failure(status, "detail")) is error


def test_a_status_of_no_known_meaning_is_neither_retried_nor_a_refusal() -> None:
    assert type(failure(404, "detail")) is RegistryError


def test_no_answer_at_all_is_unavailable() -> None:
    http = Connections(Endpoint("http://store", uds="/nonexistent/store.sock"), timeout=1)

    with pytest.raises(RegistryUnavailable, match="store"):
        send(http, "GET", "/version")


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (404, {"code": 5, "message": "etcdserver: requested lease not found"}, LeaseLost),
        (200, {"error": {"grpc_code": 7, "message": "permission denied"}}, RegistryDenied),
        (401, {"code": 16, "message": "invalid auth token"}, RegistryDenied),
        (400, {"code": 3, "message": "etcdserver: key is not provided"}, RegistryRefused),
        (503, {"code": 14, "message": "etcdserver: no leader"}, RegistryUnavailable),
        (0, "", RegistryUnavailable),
    ],
)
def test_etcd_gateway_errors_by_grpc_code_then_status(
    status: int, body: object, error: type[Exception]
) -> None:
    raised = _failure("/v3/kv/txn", status, body, text=str(body))

    assert type(raised) is error
    assert "/v3/kv/txn" in str(raised)


def test_etcd_prefix_range_ends_after_the_last_key_of_the_prefix() -> None:
    assert base64.b64decode(_prefix_end("/services/")) == b"/services0"


@pytest.mark.parametrize(("ttl", "seconds"), [("30s", 30), ("1m0s", 0), ("", 0), ("s", 0)])
def test_a_consul_session_ttl_counts_only_as_registrator_spells_it(ttl: str, seconds: int) -> None:
    """A session of another spelling is not adopted: its keys move to a new session."""
    assert _seconds(ttl) == seconds


def test_a_consul_key_in_a_url_keeps_its_slashes_and_quotes_the_rest() -> None:
    assert _path("services/my web/h:a?b#c") == "services/my%20web/h:a%3Fb%23c"
