"""Reaching a locked-down agent: ACL tokens, TLS with client certificates, a unix socket."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import ConsulDevAgent, consul_binary, start_on_free_ports, wait_until
from tests.integration.support import Containers, StartRegistrator, run_registrator

MASTER = "registrator-test-master-secret"
# What registrator needs: read its agent (advertise address) and write services.
POLICY = 'agent_prefix "" { policy = "read" }\nservice_prefix "" { policy = "write" }'


@pytest.fixture
def acl_consul(tmp_path: Path) -> Iterator[ConsulDevAgent]:
    config = {
        "acl": {
            "enabled": True,
            "default_policy": "deny",
            "tokens": {"master": MASTER, "agent": MASTER},
        }
    }
    agent = ConsulDevAgent(tmp_path / "consul", extra_config=config, token=MASTER).start()
    yield agent
    agent.stop()


def _registrator_token(consul: ConsulDevAgent) -> str:
    consul.request("PUT", "/v1/acl/policy", {"Name": "registrator", "Rules": POLICY})
    token = consul.request("PUT", "/v1/acl/token", {"Policies": [{"Name": "registrator"}]})
    return str(token["SecretID"])


def test_acl_token_with_the_documented_policy_registers_and_is_never_logged(
    acl_consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
    tmp_path: Path,
) -> None:
    secret = _registrator_token(acl_consul)
    token_file = tmp_path / "token"
    token_file.write_text(secret + "\n")
    web = containers.run(ports={80: 0})

    reg = start_registrator(
        acl_consul.uri,
        "--hostname",
        identity,
        env={"CONSUL_HTTP_TOKEN_FILE": str(token_file)},
    )

    service_id = f"{identity}:{containers.name(web)}:80"
    wait_until(lambda: service_id in acl_consul.services(), what="registered with the token")
    reg.stop()
    assert secret not in reg.log


def test_missing_token_is_reported_once_and_the_daemon_keeps_trying(
    acl_consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    containers.run(ports={80: 0})

    reg = start_registrator(
        acl_consul.uri,
        "--hostname",
        identity,
        env={"CONSUL_HTTP_TOKEN": ""},
    )

    wait_until(
        lambda: reg.log.count("registry.permission_denied") >= 3,
        timeout=30,
        what="several denied attempts",
    )
    assert reg.log.count("ERROR registry.permission_denied") == 1
    assert reg.alive
    assert not acl_consul.services(owner=identity)


def test_resync_without_permission_exits_non_zero_naming_the_problem(
    acl_consul: ConsulDevAgent,
    containers: Containers,
    identity: str,
) -> None:
    containers.run(ports={80: 0})
    no_agent_read = acl_consul.request("PUT", "/v1/acl/token", {"Description": "no rights"})

    done = run_registrator(
        "--resync",
        "--hostname",
        identity,
        acl_consul.uri,
        env={"CONSUL_HTTP_TOKEN": no_agent_read["SecretID"]},
    )

    assert done.returncode != 0
    assert "403" in done.stderr or "permission denied" in done.stderr.lower()


def _tls_material(directory: Path) -> dict[str, Path]:
    directory.mkdir()
    for args in (
        ["ca", "create"],
        ["cert", "create", "-server", "-dc", "dc1"],
        ["cert", "create", "-client", "-dc", "dc1"],
    ):
        subprocess.run(
            [consul_binary(), "tls", *args], cwd=directory, check=True, capture_output=True
        )
    return {
        "ca": directory / "consul-agent-ca.pem",
        "server": directory / "dc1-server-consul-0.pem",
        "server_key": directory / "dc1-server-consul-0-key.pem",
        "client": directory / "dc1-client-consul-0.pem",
        "client_key": directory / "dc1-client-consul-0-key.pem",
    }


def test_consul_tls_with_ca_and_client_certificate(
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
    tmp_path: Path,
) -> None:
    tls = _tls_material(tmp_path / "tls")
    config = {
        "ca_file": str(tls["ca"]),
        "cert_file": str(tls["server"]),
        "key_file": str(tls["server_key"]),
        "verify_incoming": True,
    }

    def start(ports: list[int]) -> ConsulDevAgent:
        extra = {**config, "ports": {"https": ports[0]}}
        return ConsulDevAgent(tmp_path / "consul", extra_config=extra).start()

    agent = start_on_free_ports(1, start, what="consul agent with HTTPS")
    https_port = agent.extra_config["ports"]["https"]
    try:
        web = containers.run(ports={80: 0})
        start_registrator(
            f"consul-tls://127.0.0.1:{https_port}",
            "--hostname",
            identity,
            env={
                "CONSUL_CACERT": str(tls["ca"]),
                "CONSUL_CLIENT_CERT": str(tls["client"]),
                "CONSUL_CLIENT_KEY": str(tls["client_key"]),
            },
        )
        service_id = f"{identity}:{containers.name(web)}:80"
        wait_until(lambda: service_id in agent.services(), what="registered over TLS")
    finally:
        agent.stop()


def test_consul_unix_socket(
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
    tmp_path: Path,
) -> None:
    socket_path = tmp_path / "consul.sock"
    config = {"addresses": {"http": f"127.0.0.1 unix://{socket_path}"}}
    agent = ConsulDevAgent(tmp_path / "consul", extra_config=config).start()
    try:
        web = containers.run(ports={80: 0})
        start_registrator(f"consul-unix://{socket_path}", "--hostname", identity)
        service_id = f"{identity}:{containers.name(web)}:80"
        wait_until(lambda: service_id in agent.services(), what="registered over the socket")
    finally:
        agent.stop()
