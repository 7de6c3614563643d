"""Consul Connect with real engines: a Consul 1.8.7 agent and its built-in proxy as sidecars.

`web` (busybox httpd) sits behind a sidecar; `client` has `web` as an upstream. Both proxies
are `consul connect proxy -sidecar-for <id>`, configured only by what registrator registered.
A request to the client's upstream port reaches web through mutual TLS, an intention denies
it, the sidecar comes and goes with web, and an agent restarted empty gets both back.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness import ConsulDevAgent, RegistratorProcess, consul_binary, wait_until
from harness.ports import free_port_range
from harness.processes import stop_process
from tests.integration.support import Containers, StartRegistrator, registered, run_registrator

#: Published on loopback only: the proxies run on this host and reach the apps there.
LOOPBACK: dict[int | str, Any] = {80: ("127.0.0.1",)}
SIDECAR = "-sidecar-proxy"


@pytest.fixture(scope="module")
def mesh_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsulDevAgent]:
    """This module's own agent (dev mode has Connect on), its sidecar range in the harness'
    ports, so no proxy ever meets a port another process took."""
    agent = ConsulDevAgent(tmp_path_factory.mktemp("mesh"), sidecar_ports=40).start()
    yield agent
    agent.stop()


@dataclass
class Proxies:
    """`consul connect proxy -sidecar-for` processes of the test's own, stopped at teardown."""

    directory: Path
    started: list[subprocess.Popen[bytes]]

    def sidecar_for(self, agent: ConsulDevAgent, service_id: str) -> subprocess.Popen[bytes]:
        log = self.directory / f"proxy-{len(self.started)}.log"
        args = ["connect", "proxy", "-sidecar-for", service_id, "-http-addr", agent.address]
        with log.open("ab") as out:
            process = subprocess.Popen(
                [consul_binary(), *args, "-log-level", "debug"],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.started.append(process)
        return process


@pytest.fixture
def proxies(tmp_path: Path) -> Iterator[Proxies]:
    made = Proxies(tmp_path, [])
    yield made
    for process in made.started:
        stop_process(process)


def started(
    start: StartRegistrator, agent: ConsulDevAgent, identity: str, *args: str
) -> RegistratorProcess:
    reg = start(agent.uri, "--hostname", identity, *args)
    reg.wait_for_log("docker.events.subscribed")
    return reg


def service_id(containers: Containers, identity: str, container: str) -> str:
    return f"{identity}:{containers.name(container)}:80"


def app(containers: Containers, name: str, **env: str) -> str:
    """A busybox httpd that answers `hello-<name>`, published on loopback."""
    container = containers.run(ports=LOOPBACK, env={"SERVICE_NAME": name, **env})
    containers.exec(container, "sh", "-c", f"echo hello-{name} > /www/index.html")
    return container


def get(port: int) -> str | None:
    """What an HTTP GET of 127.0.0.1:`port` answers; None when it fails."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as answer:
            return str(answer.read().decode().strip())
    except (OSError, urllib.error.URLError):
        return None


def maintenance(agent: ConsulDevAgent, sid: str) -> str | None:
    check = (agent.get("/v1/agent/checks") or {}).get(f"_service_maintenance:{sid}")
    return None if check is None else str(check["Notes"])


def mtls_get(agent: ConsulDevAgent, port: int, *, as_service: str | None) -> str:
    """GET the sidecar's public port over TLS, trusting the mesh's CA: with `as_service`'s
    leaf certificate, or with none."""
    roots = agent.get("/v1/agent/connect/ca/roots")["Roots"]
    context = ssl.create_default_context(cadata="".join(r["RootCert"] for r in roots))
    context.check_hostname = False  # a mesh certificate names a SPIFFE ID, not a host
    if as_service is not None:
        leaf = agent.get(f"/v1/agent/connect/ca/leaf/{as_service}")
        with tempfile.TemporaryDirectory() as directory:
            cert, key = Path(directory) / "cert.pem", Path(directory) / "key.pem"
            cert.write_text(leaf["CertPEM"])
            key.write_text(leaf["PrivateKeyPEM"])
            context.load_cert_chain(cert, key)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw) as tls,
    ):
        tls.sendall(b"GET / HTTP/1.0\r\nHost: web\r\n\r\n")
        answer = b""
        while chunk := tls.recv(4096):
            answer += chunk
    return answer.decode(errors="replace")


def intention(agent: ConsulDevAgent, verb: str, *args: str) -> None:
    """`consul intention <verb>`: flags before the service names, as the CLI wants them."""
    subprocess.run(
        [consul_binary(), "intention", verb, "-http-addr", agent.address, *args],
        check=True,
        capture_output=True,
        timeout=30,
    )


def test_a_request_to_the_upstream_reaches_web_through_mtls_as_intentions_allow(
    mesh_agent: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    proxies: Proxies,
    identity: str,
) -> None:
    [upstream] = free_port_range(1)  # the client proxy binds it: it must be free now
    started(start_registrator, mesh_agent, identity)
    web = app(containers, "web", SERVICE_CONNECT="sidecar")
    client = app(containers, "client", SERVICE_CONNECT_UPSTREAMS=f"web:{upstream}")
    web_id, client_id = (service_id(containers, identity, c) for c in (web, client))
    listed = registered(mesh_agent, web_id, f"{web_id}{SIDECAR}", f"{client_id}{SIDECAR}")
    [route] = listed[f"{client_id}{SIDECAR}"]["Proxy"]["Upstreams"]
    assert (route["DestinationName"], route["LocalBindPort"]) == ("web", upstream)
    assert listed[f"{web_id}{SIDECAR}"]["Proxy"]["LocalServicePort"] == containers.host_port(web)
    public = int(listed[f"{web_id}{SIDECAR}"]["Port"])
    assert public in (mesh_agent.sidecar_range or ())

    proxies.sidecar_for(mesh_agent, web_id)
    proxies.sidecar_for(mesh_agent, client_id)

    wait_until(lambda: get(upstream) == "hello-web", timeout=60, what="web through the mesh")
    # the public port speaks only mTLS with the mesh's certificates: plain HTTP, or TLS
    # without a client certificate, gets nothing from web
    assert get(public) is None
    with pytest.raises((ssl.SSLError, OSError)):
        mtls_get(mesh_agent, public, as_service=None)
    assert "hello-web" in mtls_get(mesh_agent, public, as_service="client")

    intention(mesh_agent, "create", "-deny", "client", "web")
    try:
        wait_until(lambda: get(upstream) is None, timeout=60, what="the intention denies it")
    finally:
        intention(mesh_agent, "delete", "client", "web")
    wait_until(lambda: get(upstream) == "hello-web", timeout=60, what="allowed again")


def test_docker_stop_drains_web_and_its_sidecar_and_the_die_removes_both(
    mesh_agent: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    started(start_registrator, mesh_agent, identity)
    web = containers.run(
        ports=LOOPBACK, env={"SERVICE_CONNECT": "sidecar"}, create={"stop_timeout": 20}
    )
    web_id = service_id(containers, identity, web)
    registered(mesh_agent, web_id, f"{web_id}{SIDECAR}")

    stopper = threading.Thread(target=containers.api.stop, args=(web,))
    stopper.start()
    try:
        wait_until(
            lambda: maintenance(mesh_agent, web_id) and maintenance(mesh_agent, web_id + SIDECAR),
            timeout=15,  # within the 20 s docker stop waits for httpd (PID 1 ignores TERM)
            what="web and its sidecar in maintenance at the stop signal",
        )
        containers.api.kill(web)  # seen: no need to wait out the stop timeout
    finally:
        stopper.join(timeout=30)
    wait_until(
        lambda: not {web_id, web_id + SIDECAR} & set(mesh_agent.services()),
        timeout=30,
        what="both gone after the die",
    )


def test_pause_puts_web_and_its_sidecar_in_maintenance_and_unpause_lifts_both(
    mesh_agent: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    started(start_registrator, mesh_agent, identity)
    web = containers.run(ports=LOOPBACK, env={"SERVICE_CONNECT": "sidecar"})
    pair = (service_id(containers, identity, web), service_id(containers, identity, web) + SIDECAR)
    registered(mesh_agent, *pair)

    containers.api.pause(web)
    wait_until(
        lambda: all(maintenance(mesh_agent, sid) for sid in pair), what="both in maintenance"
    )
    containers.api.unpause(web)
    wait_until(lambda: not any(maintenance(mesh_agent, sid) for sid in pair), what="both out of it")
    assert set(pair) <= set(mesh_agent.services())


def test_a_burst_of_connect_containers_leaves_nothing_stale(
    mesh_agent: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    started(start_registrator, mesh_agent, identity)
    env = {"SERVICE_CONNECT": "sidecar", "SERVICE_CONNECT_UPSTREAMS": "db:19191"}
    with ThreadPoolExecutor(max_workers=4) as pool:
        burst = list(pool.map(lambda _: containers.run(ports=LOOPBACK, env=env), range(20)))
    ids = {service_id(containers, identity, c) for c in burst}
    registered(mesh_agent, *ids, *(f"{i}{SIDECAR}" for i in ids))

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda c: containers.api.remove_container(c, force=True), burst))

    wait_until(
        lambda: not mesh_agent.services(owner=identity),
        timeout=60,
        what="no service and no sidecar left of the burst",
    )


def test_an_agent_restarted_empty_gets_web_its_sidecar_and_upstreams_back(
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
    tmp_path: Path,
) -> None:
    agent = ConsulDevAgent(tmp_path / "consul", sidecar_ports=4).start()
    try:
        started(start_registrator, agent, identity, "--agent-check-interval", "1")
        web = app(containers, "web", SERVICE_CONNECT_UPSTREAMS="db:19191,dc2:pay:19192")
        web_id = service_id(containers, identity, web)
        before = registered(agent, web_id, f"{web_id}{SIDECAR}")[f"{web_id}{SIDECAR}"]

        agent.stop()
        agent.start(http_port=agent.http_port)

        after = registered(agent, web_id, f"{web_id}{SIDECAR}")[f"{web_id}{SIDECAR}"]
        assert after["Proxy"]["Upstreams"] == before["Proxy"]["Upstreams"]
        assert after["Meta"] == before["Meta"]
    finally:
        agent.stop()


def test_a_sidecar_the_agent_refuses_costs_its_service_nothing_but_connect(
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
    tmp_path: Path,
) -> None:
    agent = ConsulDevAgent(tmp_path / "consul", sidecar_ports=1).start()
    try:
        reg = started(start_registrator, agent, identity)
        first = app(containers, "first", SERVICE_CONNECT="sidecar")
        registered(agent, f"{service_id(containers, identity, first)}{SIDECAR}")
        second = app(containers, "second", SERVICE_CONNECT="sidecar", SERVICE_CHECK_TCP="true")
        second_id = service_id(containers, identity, second)

        registered(agent, second_id)
        reg.wait_for_log("registry.refused")
        checks = agent.get("/v1/agent/checks") or {}
        assert f"{second_id}{SIDECAR}" not in agent.services()
        assert f"service:{second_id}:tcp" in checks  # its own checks are kept
        assert reg.log.count("Invalid SidecarService") == 1
    finally:
        agent.stop()


def test_a_proxy_on_the_host_for_an_internal_app_is_checked_where_it_listens(
    mesh_agent: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    proxies: Proxies,
    identity: str,
) -> None:
    [port] = free_port_range(1)  # the proxy binds it
    started(start_registrator, mesh_agent, identity, "--internal")
    env = {"SERVICE_CONNECT_ADDRESS": "127.0.0.1", "SERVICE_CONNECT_PORT": str(port)}
    web = containers.run(
        expose=[80], env={"SERVICE_NAME": "inner", "SERVICE_CONNECT": "sidecar", **env}
    )
    web_id = service_id(containers, identity, web)
    sidecar = registered(mesh_agent, web_id, web_id + SIDECAR)[web_id + SIDECAR]
    assert sidecar["Proxy"]["LocalServiceAddress"] == containers.address(web)
    assert (sidecar["Address"], sidecar["Port"]) == ("127.0.0.1", port)

    def statuses() -> set[str]:
        checks = (mesh_agent.get("/v1/agent/checks") or {}).values()
        return {c["Status"] for c in checks if c["ServiceID"] == web_id + SIDECAR}

    assert "critical" in statuses()  # no proxy listens yet
    proxies.sidecar_for(mesh_agent, web_id)
    wait_until(lambda: statuses() == {"passing"}, timeout=60, what="its checks pass once it is up")


def test_resync_dry_run_and_explain_show_the_sidecar_and_an_idle_resync_writes_nothing(
    mesh_agent: ConsulDevAgent, containers: Containers, identity: str
) -> None:
    web = app(containers, "web", SERVICE_CONNECT_UPSTREAMS="db:19191,dc2:pay:19192")
    web_id = service_id(containers, identity, web)
    options = ("--hostname", identity, mesh_agent.uri)

    dry = run_registrator("--resync", "--dry-run", *options)
    assert f"would register {web_id}" in dry.stdout
    assert not mesh_agent.services(owner=identity)
    first = run_registrator("--resync", *options)
    again = run_registrator("--resync", *options)
    shown = run_registrator("explain", *options, containers.name(web), isolated=False)

    assert (first.returncode, again.returncode) == (0, 0), first.stderr
    assert set(mesh_agent.services(owner=identity)) == {web_id, f"{web_id}{SIDECAR}"}
    assert "registered 0, updated 0, deregistered 0, unchanged 1" in again.stdout
    lines = shown.stdout.splitlines()
    assert any(line.startswith(f"    sidecar  {web_id}{SIDECAR}") for line in lines)
    assert "    upstream db on 127.0.0.1:19191" in lines
    assert "    upstream pay in dc2 on 127.0.0.1:19192" in lines
    assert "    in Consul: registered, up to date" in lines


@pytest.mark.parametrize("scheme", ["consulkv", "consul-catalog"])
def test_connect_keys_are_ignored_without_the_agent_with_one_line(
    mesh_agent: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
    scheme: str,
) -> None:
    """Consul KV and catalog mode: the services register, their Connect keys are ignored."""
    asking = [
        app(containers, "first", SERVICE_CONNECT="sidecar"),
        app(containers, "second", SERVICE_CONNECT="native"),
    ]
    uri = f"{scheme}://{mesh_agent.address}" + (f"/{identity}" if scheme == "consulkv" else "")
    reg = start_registrator("--hostname", identity, "--ip", "127.0.0.1", uri)

    wait_until(
        lambda: reg.log.count("service.registered") >= 2, what="both registered all the same"
    )
    [line] = [line for line in reg.log.splitlines() if "connect.ignored" in line]
    assert any(f"container={containers.name(c)} " in line for c in asking)
    catalog = mesh_agent.get("/v1/catalog/services") or {}
    assert not any(SIDECAR in name for name in catalog if name.startswith(("first", "second")))


#: what the Debian-built consul binary needs in a busybox container beside itself
LIBRARIES = ("/lib64", "/lib/x86_64-linux-gnu")


def test_sidecars_in_the_apps_network_namespaces_with_internal(
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
    tmp_path: Path,
) -> None:
    """`docker run --network container:<app> ... consul connect proxy -sidecar-for <id>`: the
    proxies reach the agent over its unix socket, mounted in, and each other at the apps'
    container addresses; the request is made from inside the client container."""
    sockets = tmp_path / "sockets"
    sockets.mkdir()
    config = {"addresses": {"http": f"127.0.0.1 unix://{sockets}/consul.sock"}}
    agent = ConsulDevAgent(tmp_path / "consul", extra_config=config, sidecar_ports=4).start()
    proxies: list[str] = []
    try:
        started(start_registrator, agent, identity, "--internal")
        web = containers.run(expose=[80], env={"SERVICE_NAME": "web", "SERVICE_CONNECT": "sidecar"})
        containers.exec(web, "sh", "-c", "echo hello-web > /www/index.html")
        client = containers.run(
            expose=[80], env={"SERVICE_NAME": "client", "SERVICE_CONNECT_UPSTREAMS": "web:9191"}
        )
        ids = {c: service_id(containers, identity, c) for c in (web, client)}
        listed = registered(agent, *(f"{i}{SIDECAR}" for i in ids.values()))
        sidecar = listed[f"{ids[web]}{SIDECAR}"]
        assert sidecar["Proxy"]["LocalServiceAddress"] == containers.address(web)

        binds = [f"{consul_binary()}:/consul:ro", f"{sockets}:/run/consul"]
        binds += [f"{path}:{path}:ro" for path in LIBRARIES]
        for app_container, sid in ids.items():
            command = ["/consul", "connect", "proxy", "-sidecar-for", sid]
            command += ["-http-addr", "unix:///run/consul/consul.sock", "-log-level", "debug"]
            proxy = containers.run(command, network_mode=f"container:{app_container}", binds=binds)
            proxies.append(proxy)

        def through_the_mesh() -> str:
            # busybox's wget crashes on this image; its nc speaks HTTP/1.0 well enough, but
            # not from a pipe: at the pipe's end it half-closes, and Consul's proxy then closes
            # both ways, often before web's answer is back. So nc reads a FIFO the shell holds
            # open until nc has the answer (web closes after it) and exits.
            request = (
                "f=$(mktemp -u) && mkfifo $f && { nc -w 5 127.0.0.1 9191 < $f & exec 3>$f; } && "
                "printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3; wait $!; exec 3>&-; rm -f $f"
            )
            asked = ["sh", "-c", request]
            answer = containers.api.exec_start(containers.api.exec_create(client, asked))
            return str(answer.decode(errors="replace").strip().rpartition("\n")[2])

        wait_until(lambda: through_the_mesh() == "hello-web", timeout=60, what="web via mTLS")

        def passing() -> bool:
            checks = (agent.get("/v1/agent/checks") or {}).values()
            mine = [c["Status"] for c in checks if c["ServiceID"] == f"{ids[web]}{SIDECAR}"]
            return bool(mine) and set(mine) == {"passing"}

        wait_until(passing, timeout=60, what="Consul's own checks pass at the container address")
    finally:
        for proxy in proxies:  # shown when the test failed
            print(f"--- proxy {proxy[:12]} ---\n{containers.api.logs(proxy).decode()[-5000:]}")
        agent.stop()
