"""The key-value registries' layout, health rule and URIs: pure parts, no etcd or Consul."""

from __future__ import annotations

import dataclasses

import pytest

from registrator.core.errors import ConfigError
from registrator.core.model import Check, Service, ServiceID
from registrator.registries.kv.layout import Layout, held, join_host_port, skydns_prefix
from registrator.registries.open import open_registry

WEB = Service(ServiceID("h:web-1:80"), "web", "10.0.0.5", 32768, tags=("a",), meta=(("k", "v"),))


def test_gliderlabs_key_and_value_read_back_equal_to_what_is_held() -> None:
    layout = Layout("/services")

    key, value = layout.key(WEB), layout.value(WEB)

    assert (key, value) == ("/services/web/h:web-1:80", "10.0.0.5:32768")
    assert layout.parse(key, value) == held(WEB, health=True)


def test_skydns_layout_is_json_under_the_reversed_domain() -> None:
    layout = Layout(skydns_prefix("Example.Local."), "skydns")

    assert layout.key(WEB) == "/skydns/local/example/web/h:web-1:80"
    assert layout.value(WEB) == '{"host": "10.0.0.5", "port": 32768}'
    assert layout.parse(layout.key(WEB), layout.value(WEB)) == held(WEB, health=False)


def test_ipv6_values_are_bracketed_and_parse_back() -> None:
    v6 = dataclasses.replace(WEB, address="fd00::2")
    layout = Layout("/s")

    assert join_host_port("fd00::2", 80) == "[fd00::2]:80"
    assert layout.parse(layout.key(v6), layout.value(v6)) == held(v6, health=True)


@pytest.mark.parametrize(
    ("key", "value"),
    [("/other/web/x", "1.2.3.4:1"), ("/services/web", "1.2.3.4:1"), ("/services/a/b/c", "x:1")],
)
def test_keys_of_another_shape_are_not_services(key: str, value: str) -> None:
    assert Layout("/services").parse(key, value) is None


def test_a_garbled_value_reads_as_a_service_that_differs() -> None:
    parsed = Layout("/services").parse("/services/web/h:web-1:80", "nonsense")

    assert parsed is not None
    assert parsed != held(WEB, health=True)


def test_health_leaves_out_maintenance_and_a_critical_docker_health_mirror() -> None:
    mirror = Check(f"service:{WEB.id}:docker-health", "web Docker HEALTHCHECK", "ttl")
    sick = dataclasses.replace(WEB, checks=(dataclasses.replace(mirror, status="critical"),))
    well = dataclasses.replace(WEB, checks=(dataclasses.replace(mirror, status="passing"),))
    paused = dataclasses.replace(WEB, maintenance="container paused")

    assert held(sick, health=True) is None
    assert held(paused, health=True) is None
    assert held(well, health=True) == Service(WEB.id, "web", "10.0.0.5", 32768)
    assert held(sick, health=False) == held(paused, health=False) == held(well, health=True)


def test_services_that_cannot_be_one_key_are_refused_with_a_reason() -> None:
    layout = Layout("/s")

    assert layout.refusal(WEB) is None
    assert "ID" in str(layout.refusal(dataclasses.replace(WEB, id=ServiceID("a/b"))))
    assert "-ip" in str(layout.refusal(dataclasses.replace(WEB, address="")))


@pytest.mark.parametrize(
    ("uri", "kind", "ttl", "interval"),
    [
        ("etcd://127.0.0.1:2379/services", "etcd", 30, 10.0),
        ("skydns2://127.0.0.1/example.local", "skydns2", 30, 10.0),
        ("consulkv://127.0.0.1:8500/services", "consulkv", 30, 10.0),
        ("consul://127.0.0.1:8500", "consul", 0, 0.0),
    ],
)
def test_uris_open_their_registry_with_the_lease_defaults(
    uri: str, kind: str, ttl: int, interval: float
) -> None:
    opened = open_registry(uri, env={})
    try:
        assert (opened.kind, opened.lease_ttl, opened.heartbeat_interval) == (kind, ttl, interval)
        assert opened.keyed is (kind != "consul")
    finally:
        opened.close()


def test_ttl_and_refresh_are_the_leases() -> None:
    opened = open_registry("etcd://127.0.0.1/s", ttl=6, ttl_refresh=1, env={})
    opened.close()

    assert (opened.lease_ttl, opened.heartbeat_interval) == (6, 1.0)


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("zookeeper://zk:2181/services", "zookeeper:// is not supported"),
        ("redis://r:6379", "scheme must be consul"),
        ("skydns2://e:2379/", "not a DNS domain"),
        ("consulkv://c:8500", "names no key prefix"),
        ("etcd:///services", "names no host"),
    ],
)
def test_bad_uris_are_one_config_error(uri: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        open_registry(uri, env={})
