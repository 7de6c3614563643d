"""The Docker endpoint from the environment, by the rules docker-py and the docker CLI follow."""

from __future__ import annotations

from pathlib import Path

import pytest

from registrator.core.errors import ConfigError
from registrator.docker.endpoint import docker_endpoint


@pytest.mark.parametrize(
    ("env", "base_url", "uds"),
    [
        ({}, "unix:///var/run/docker.sock", "/var/run/docker.sock"),
        ({"DOCKER_HOST": ""}, "unix:///var/run/docker.sock", "/var/run/docker.sock"),
        ({"DOCKER_HOST": "unix:///tmp/d.sock"}, "unix:///tmp/d.sock", "/tmp/d.sock"),
        ({"DOCKER_HOST": "tcp://10.0.0.1:2375"}, "http://10.0.0.1:2375", None),
        ({"DOCKER_HOST": "tcp://docker"}, "http://docker:2375", None),
        ({"DOCKER_HOST": "tcp://[::1]:2375"}, "http://[::1]:2375", None),
        ({"DOCKER_HOST": "tcp://d", "DOCKER_TLS_VERIFY": ""}, "http://d:2375", None),
    ],
)
def test_where_the_engine_is(env: dict[str, str], base_url: str, uds: str | None) -> None:
    endpoint = docker_endpoint(env)

    assert (endpoint.base_url, endpoint.uds, endpoint.tls) == (base_url, uds, None)


def test_tls_verifies_the_engine_with_the_certificates_of_docker_cert_path(tmp_path: Path) -> None:
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("not a certificate")
    env = {"DOCKER_HOST": "tcp://d", "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(tmp_path)}

    with pytest.raises(ConfigError, match=f"Docker TLS files in {tmp_path}"):
        docker_endpoint(env)


def test_tls_without_verify_takes_no_ca(tmp_path: Path) -> None:
    endpoint = docker_endpoint({"DOCKER_HOST": "tcp://d", "DOCKER_CERT_PATH": str(tmp_path)})

    assert endpoint.base_url == "https://d:2376"
    assert endpoint.tls is not None
    assert not endpoint.tls.check_hostname


@pytest.mark.parametrize(
    "host", ["ssh://user@host", "npipe:////./pipe/docker", "tcp://", "unix://"]
)
def test_an_engine_this_client_cannot_reach_is_a_config_error(host: str) -> None:
    with pytest.raises(ConfigError, match="DOCKER_HOST"):
        docker_endpoint({"DOCKER_HOST": host})
