"""Registry URIs, Consul's own variables, options vs environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from registrator.app.settings import Settings
from registrator.core.errors import ConfigError
from registrator.registries.consul.target import consul_target


@pytest.mark.parametrize(
    ("uri", "env", "base_url"),
    [
        ("", {}, "http://127.0.0.1:8500"),
        ("", {"CONSUL_HTTP_ADDR": "10.1.2.3:8501"}, "http://10.1.2.3:8501"),
        ("", {"CONSUL_HTTP_ADDR": "https://consul.local:8501"}, "https://consul.local:8501"),
        ("", {"CONSUL_HTTP_ADDR": "c:8500", "CONSUL_HTTP_SSL": "true"}, "https://c:8500"),
        ("consul://agent:8600", {"CONSUL_HTTP_ADDR": "ignored:1"}, "http://agent:8600"),
        ("consul://agent", {}, "http://agent:8500"),
        ("consul-tls://agent:8501", {}, "https://agent:8501"),
        ("consul://[::1]:8500", {}, "http://[::1]:8500"),
    ],
)
def test_registry_uri_resolution(uri: str, env: dict[str, str], base_url: str) -> None:
    assert consul_target(uri, env).base_url == base_url


def test_unix_socket_uri() -> None:
    target = consul_target("consul-unix:///run/consul/http.sock", {})

    assert target.uds == "/run/consul/http.sock"


def test_tls_settings_come_from_consuls_variables() -> None:
    env = {
        "CONSUL_CACERT": "/ca.pem",
        "CONSUL_CLIENT_CERT": "/c.pem",
        "CONSUL_CLIENT_KEY": "/k.pem",
    }

    target = consul_target("consul-tls://agent:8501", env)

    assert target.verify == "/ca.pem"
    assert target.cert == ("/c.pem", "/k.pem")
    assert consul_target("consul-tls://a", {"CONSUL_HTTP_SSL_VERIFY": "false"}).verify is False


def test_token_from_variable_or_file(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")

    assert consul_target("", {"CONSUL_HTTP_TOKEN": "t1"}).token == "t1"
    assert consul_target("", {"CONSUL_HTTP_TOKEN_FILE": str(token_file)}).token == "s3cret"


@pytest.mark.parametrize("uri", ["etcd://x:2379", "consul://", "consul-unix://"])
def test_bad_registry_uris_are_config_errors(uri: str) -> None:
    with pytest.raises(ConfigError, match="registry URI"):
        consul_target(uri, {})


def test_unreadable_token_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CONSUL_HTTP_TOKEN_FILE"):
        consul_target("", {"CONSUL_HTTP_TOKEN_FILE": str(tmp_path / "missing")})


def test_environment_supplies_options_and_explicit_values_beat_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REGISTRATOR_IP", "10.0.0.9")
    monkeypatch.setenv("REGISTRATOR_TAGS", "a, b")

    assert Settings().ip == "10.0.0.9"
    assert Settings().tag_list == ("a", "b")
    assert Settings(ip="10.0.0.1").ip == "10.0.0.1"


def test_gliderlabs_tls_variables_are_honoured() -> None:
    env = {"CONSUL_TLSCERT": "/c.pem", "CONSUL_TLSKEY": "/k.pem", "CONSUL_CACERT": "/ca.pem"}

    target = consul_target("consul-tls://agent:8501", env)

    assert (target.base_url, target.cert, target.verify) == (
        "https://agent:8501",
        ("/c.pem", "/k.pem"),
        "/ca.pem",
    )


@pytest.mark.parametrize("ip", ["10.0.0.1", "2001:db8::1", "host-1.example", "localhost", ""])
def test_ip_option_takes_an_address_or_a_host_name(ip: str) -> None:
    assert Settings(ip=ip).ip == ip


@pytest.mark.parametrize("ip", ["10.0.0.1:80", "a b", "-x.example", "http://x", "x..y"])
def test_ip_option_rejects_anything_else(ip: str) -> None:
    with pytest.raises(ValueError, match="neither an IP address nor a host name"):
        Settings(ip=ip)


@pytest.mark.parametrize(
    ("ttl", "refresh", "message"),
    [(0, 10, "needs --ttl"), (10, 10, "shorter than --ttl"), (10, 30, "shorter than --ttl")],
)
def test_ttl_refresh_must_fit_within_the_ttl(ttl: int, refresh: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings(ttl=ttl, ttl_refresh=refresh)


def test_ttl_with_a_shorter_refresh_is_accepted() -> None:
    assert (Settings(ttl=30, ttl_refresh=10).ttl_refresh, Settings(ttl=30).ttl_refresh) == (10, 0)
