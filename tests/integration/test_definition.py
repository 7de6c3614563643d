"""The whole Consul service definition, IPv6 and dual stack, and refusals, against the real
Docker daemon and a real Consul 1.8.7 agent.

IPv6 runs on a network of this module's own (`docker network create --ipv6` with an IPv6 and an
IPv4 subnet, chosen so that they overlap no route or network on the machine). What Consul writes
is counted at a small proxy of this module in front of the agent, so "an idle resync writes
nothing" is a count of PUTs, not a reading of registrator's own log.
"""

from __future__ import annotations

import http.client
import http.server
import ipaddress
import json
import random
import re
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rdatatype
import docker
import pytest

from harness import TEST_LABEL, ConsulDevAgent, RegistratorProcess, wait_until
from registrator.core.durations import DurationError, nanoseconds
from registrator.core.errors import RegistryRefused
from registrator.core.model import Check, Service, ServiceID
from registrator.registries.consul.agent import ConsulAgent
from registrator.registries.consul.target import ConsulTarget
from tests.integration.support import SESSION, Containers, StartRegistrator
from tests.integration.test_checks import bridge_gateway, wait_for_status

HTTPD_ON = "httpd -f -h /www -p {port}"
MASTER = "definition-master-token"


# -- the machine's own networks, a dual-stack network of this module's -----------------------


def _routes() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Every route on this machine (from /proc), so a new subnet never shadows one."""
    found: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for line in Path("/proc/net/route").read_text().splitlines()[1:]:
        fields = line.split()
        destination = ipaddress.IPv4Address(bytes.fromhex(fields[1])[::-1])
        mask = ipaddress.IPv4Address(bytes.fromhex(fields[7])[::-1])
        found.append(ipaddress.IPv4Network(f"{destination}/{mask}", strict=False))
    for line in Path("/proc/net/ipv6_route").read_text().splitlines():
        fields = line.split()
        address = ipaddress.IPv6Address(bytes.fromhex(fields[0]))
        found.append(ipaddress.IPv6Network(f"{address}/{int(fields[1], 16)}", strict=False))
    return [r for r in found if r.prefixlen > 0]  # default routes overlap everything


def _docker_subnets(api: docker.APIClient) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    subnets = []
    for network in api.networks():
        for pool in (network.get("IPAM") or {}).get("Config") or ():
            if pool.get("Subnet"):
                subnets.append(ipaddress.ip_network(pool["Subnet"]))
    return subnets


def _free_subnets(api: docker.APIClient) -> tuple[str, str]:
    """A ULA /64 and a 172.16/12 /24 that overlap nothing on the machine."""
    taken = _routes() + _docker_subnets(api)
    while True:
        ipv6 = ipaddress.IPv6Network((0xFD << 120 | random.getrandbits(56) << 64, 64))
        ipv4 = ipaddress.IPv4Network((0xAC10 << 16 | random.getrandbits(12) << 8, 24))
        if not any(ipv6.overlaps(t) or ipv4.overlaps(t) for t in taken if t.version in (4, 6)):
            return str(ipv6), str(ipv4)


@pytest.fixture(scope="module")
def dual_stack(docker_api: docker.APIClient) -> Iterator[str]:
    """A user-defined network with an IPv6 and an IPv4 subnet, as Docker 20.10 makes them."""
    name = f"rt-dual-{uuid.uuid4().hex[:8]}"
    for _ in range(5):  # another test run may take the same subnet between check and create
        ipv6, ipv4 = _free_subnets(docker_api)
        pools = [docker.types.IPAMPool(subnet=ipv6), docker.types.IPAMPool(subnet=ipv4)]
        try:
            docker_api.create_network(
                name,
                driver="bridge",
                enable_ipv6=True,
                ipam=docker.types.IPAMConfig(pool_configs=pools),
                labels={TEST_LABEL: SESSION},
            )
            break
        except docker.errors.APIError as e:
            if "overlap" not in str(e):
                raise
    yield name
    for row in docker_api.containers(all=True, filters={"network": name}):
        docker_api.remove_container(row["Id"], force=True)
    docker_api.remove_network(name)


def addresses(containers: Containers, container: str, network: str) -> tuple[str, str]:
    net = containers.inspect(container)["NetworkSettings"]["Networks"][network]
    return str(net["IPAddress"]), str(net["GlobalIPv6Address"])


# -- a proxy that counts what is written to the agent ----------------------------------------


class CountingProxy:
    """Forwards HTTP to the agent and counts each write (`PUT` and its path)."""

    def __init__(self, agent: ConsulDevAgent) -> None:
        self.agent = agent
        self.upstream = agent.address
        self.writes: list[str] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                proxy.forward(self)

            def do_PUT(self) -> None:
                with proxy._lock:
                    proxy.writes.append(self.path.split("?")[0])
                proxy.forward(self)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def uri(self) -> str:
        return f"consul://127.0.0.1:{self.server.server_address[1]}"

    def forward(self, request: http.server.BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else None
        upstream = http.client.HTTPConnection(self.upstream, timeout=10)
        try:
            upstream.request(request.command, request.path, body=body)
            response = upstream.getresponse()
            data = response.read()
        finally:
            upstream.close()
        request.send_response(response.status)
        request.send_header("Content-Length", str(len(data)))
        request.send_header("Content-Type", response.getheader("Content-Type") or "")
        request.end_headers()
        request.wfile.write(data)

    def count(self) -> int:
        with self._lock:
            return len(self.writes)


@pytest.fixture
def counting(consul: ConsulDevAgent) -> Iterator[CountingProxy]:
    proxy = CountingProxy(consul)
    proxy.thread.start()
    yield proxy
    proxy.server.shutdown()
    proxy.server.server_close()


# -- helpers ---------------------------------------------------------------------------------


def started(
    start: StartRegistrator, uri: str, identity: str, *args: str, **kwargs: Any
) -> RegistratorProcess:
    """A registrator that has made its first full pass: it inspects every container on the
    host, which takes a while when other test runs have hundreds there."""
    reg = start(uri, "--hostname", identity, *args, **kwargs)
    reg.wait_for_log("reconcile.done scope=full", timeout=90)
    return reg


def service_of(consul: ConsulDevAgent, service_id: str) -> dict[str, Any]:
    return wait_until(lambda: consul.services().get(service_id), what=service_id)


def resyncs(reg: RegistratorProcess) -> int:
    return reg.log.count("reconcile.done scope=full")


def wait_for_resyncs(reg: RegistratorProcess, count: int) -> None:
    since = resyncs(reg)
    wait_until(lambda: resyncs(reg) >= since + count, timeout=30, what=f"{count} resyncs")


def srv_weights(consul: ConsulDevAgent, name: str) -> dict[int, int]:
    """Port -> SRV weight, as Consul DNS answers `<name>.service.consul SRV`."""
    query = dns.message.make_query(f"{name}.service.consul", dns.rdatatype.SRV)
    answer = dns.query.udp(query, "127.0.0.1", port=consul.dns_port, timeout=5)
    return {rr.port: rr.weight for rrset in answer.answer for rr in rrset}


# -- weights, tag override -------------------------------------------------------------------


def test_weights_are_the_srv_weights_of_consul_dns_passing_and_warning(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    started(start_registrator, consul.uri, identity)
    name = f"weighted-{identity}"
    env = {"SERVICE_NAME": name, "SERVICE_WEIGHT_PASSING": "10", "SERVICE_WEIGHT_WARNING": "2"}
    passing = containers.run(env=env, ports={80: 0})
    warning = containers.run(
        env={**env, "SERVICE_CHECK_TTL": "1h", "SERVICE_CHECK_INITIAL_STATUS": "warning"},
        ports={80: 0},
    )
    expected = {containers.host_port(passing): 10, containers.host_port(warning): 2}

    assert wait_until(lambda: srv_weights(consul, name) == expected, what="SRV weights")
    registered = service_of(consul, f"{identity}:{containers.name(passing)}:80")
    assert registered["Weights"] == {"Passing": 10, "Warning": 2}


@pytest.fixture
def syncing_consul(tmp_path: Path) -> Iterator[ConsulDevAgent]:
    """An agent whose anti-entropy pass can be asked for: with ACLs on (everything allowed),
    a new agent token makes Consul 1.8 run it at once instead of within the next minute."""
    config = {
        "acl": {"enabled": True, "default_policy": "allow", "tokens": {"master": MASTER}},
    }
    agent = ConsulDevAgent(tmp_path / "consul", extra_config=config, token=MASTER).start()
    yield agent
    agent.stop()


def anti_entropy(consul: ConsulDevAgent, token: str) -> None:
    """Have the agent sync with the catalog now: a changed agent token triggers it (the
    master token, or "" for the anonymous one, which may do anything here)."""
    consul.request("PUT", "/v1/agent/token/agent", {"Token": token})


def edited_into_agent(consul: ConsulDevAgent, edited: dict[str, Any]) -> None:
    """Edit the service in the catalog until the agent's own copy carries the edit's tags.

    Its anti-entropy pass is asked for again every 2 s (a loaded machine may run the first one
    before the edit is visible to it), the agent token left as the master one. The edit is made
    again when the catalog lost it: the agent's first push of a service it has just been given
    (or of a check's status, which carries the service) writes the agent's own tags over the
    catalog's, and a loaded machine may push only after the edit. Registrator writes nothing
    meanwhile (the test asserts it)."""
    node = consul.get("/v1/agent/self")["Config"]["NodeName"]
    service_id, tags = edited["ID"], edited["Tags"]
    last = [0.0]

    def in_catalog() -> bool:
        found = consul.get(f"/v1/catalog/service/{edited['Service']}")
        return [s["ServiceTags"] for s in found if s["ServiceID"] == service_id] == [tags]

    def synced() -> bool:
        if consul.services()[service_id]["Tags"] == tags:
            return True
        if time.monotonic() - last[0] > 2:
            if not in_catalog():
                body = {"Node": node, "Address": "127.0.0.1", "SkipNodeUpdate": True}
                consul.request("PUT", "/v1/catalog/register", {**body, "Service": edited})
            anti_entropy(consul, "")
            anti_entropy(consul, MASTER)
            last[0] = time.monotonic()
        return False

    wait_until(synced, timeout=90, interval=0.2, what="the catalog edit in the agent's own copy")


def test_tags_edited_in_the_catalog_survive_resyncs_with_override_on(
    syncing_consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    """Consul copies catalog edits into the agent's copy at its next anti-entropy pass; from
    then on, a registrator that compared tags would put its own back (Consul 1.8 pushes a
    re-registration's tags over the catalog's, override or not)."""
    consul = syncing_consul
    reg = started(start_registrator, consul.uri, identity, "--resync-interval", "0.3")
    env = {"SERVICE_TAGS": "a", "SERVICE_ENABLE_TAG_OVERRIDE": "true"}
    web = containers.run(env=env, ports={80: 0})
    service_id = f"{identity}:{containers.name(web)}:80"
    registered = service_of(consul, service_id)
    assert registered["EnableTagOverride"] is True

    edited_into_agent(consul, {**registered, "Tags": ["a", "edited"]})
    wait_for_resyncs(reg, 5)
    anti_entropy(consul, "")
    wait_for_resyncs(reg, 5)

    catalog = consul.get(f"/v1/catalog/service/{registered['Service']}")
    assert [s["ServiceTags"] for s in catalog if s["ServiceID"] == service_id] == [["a", "edited"]]
    assert consul.services()[service_id]["Tags"] == ["a", "edited"]
    assert f"service.updated service={service_id}" not in reg.log


# -- checks: another port, thresholds --------------------------------------------------------


def test_checks_on_another_port_pass_while_nothing_listens_on_the_service_port(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    gateway = bridge_gateway(containers)  # not loopback: Docker's proxy would accept anything
    started(start_registrator, consul.uri, identity, "--ip", gateway)
    env = {
        "SERVICE_80_CHECK_HTTP": "/index.html",
        "SERVICE_80_CHECK_TCP": "true",
        "SERVICE_80_CHECK_PORT": "8081",
        "SERVICE_80_CHECK_INTERVAL": "1s",
        "SERVICE_8081_IGNORE": "true",
    }
    web = containers.run(HTTPD_ON.format(port=8081).split(), env=env, ports={80: 0, 8081: 0})
    service_id = f"{identity}:{containers.name(web)}:80"

    http = wait_for_status(consul, f"service:{service_id}:http", "passing")
    wait_for_status(consul, f"service:{service_id}:tcp", "passing")

    assert f"http://{gateway}:{containers.host_port(web, '8081/tcp')}/index.html" in http["Output"]
    assert service_of(consul, service_id)["Port"] == containers.host_port(web)
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(f"http://{gateway}:{containers.host_port(web)}/", timeout=5)
    assert list(consul.services(owner=identity)) == [service_id]


def test_thresholds_hold_a_checks_status_for_the_configured_count(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    """Consul 1.8 applies thresholds to changes: its log says when it holds a status."""
    started(start_registrator, consul.uri, identity)
    env = {
        "SERVICE_CHECK_HTTP": "/index.html",
        "SERVICE_CHECK_INTERVAL": "1s",
        "SERVICE_CHECK_FAILURES_BEFORE_CRITICAL": "2",
        "SERVICE_CHECK_SUCCESS_BEFORE_PASSING": "3",
    }
    web = containers.run(env=env, ports={80: 0})
    check_id = f"service:{identity}:{containers.name(web)}:80:http"
    wait_for_status(consul, check_id, "passing")

    containers.exec(web, "mv", "/www/index.html", "/www/away.html")
    wait_for_status(consul, check_id, "critical")
    containers.exec(web, "mv", "/www/away.html", "/www/index.html")
    wait_for_status(consul, check_id, "passing")

    expected = [
        f"Check failed but has not reached failure threshold: check={check_id} "
        "status=critical failure_count=1 failure_threshold=2",
        f"Check passed but has not reached success threshold: check={check_id} "
        "status=passing success_count=1 success_threshold=3",
        f"Check passed but has not reached success threshold: check={check_id} "
        "status=passing success_count=2 success_threshold=3",
    ]

    def held() -> list[str]:
        said = [line for line in consul_log(consul) if f"check={check_id} " in f"{line} "]
        return [line.split("agent: ", 1)[1] for line in said if "threshold" in line]

    # in this order; a loaded machine may add a slow probe's own lines in between
    wait_until(lambda: in_order(expected, held()), what="the threshold lines in Consul's log")


def in_order(expected: list[str], lines: list[str]) -> bool:
    remaining = iter(lines)
    return all(any(line == wanted for line in remaining) for wanted in expected)


def consul_log(consul: ConsulDevAgent) -> list[str]:
    return (consul.workdir / "consul.log").read_text().splitlines()


# -- ports a container does not expose -------------------------------------------------------


def test_a_portless_worker_is_registered_with_service_port_and_internal(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    started(start_registrator, consul.uri, identity, "--internal")
    env = {
        "SERVICE_PORT": "9100",
        "SERVICE_CHECK_HTTP": "/index.html",
        "SERVICE_CHECK_INTERVAL": "1s",
    }
    worker = containers.run(HTTPD_ON.format(port=9100).split(), env=env)
    assert not containers.inspect(worker)["Config"].get("ExposedPorts")
    service_id = f"{identity}:{containers.name(worker)}:9100"

    registered = service_of(consul, service_id)

    assert (registered["Address"], registered["Port"]) == (containers.address(worker), 9100)
    assert "port" not in registered["Meta"]
    wait_for_status(consul, f"service:{service_id}:http", "passing")


# -- IPv6 and dual stack ---------------------------------------------------------------------


def test_a_dual_stack_container_is_registered_by_ipv4_with_both_tagged_addresses(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
    dual_stack: str,
) -> None:
    started(start_registrator, consul.uri, identity, "--internal")
    web = containers.run(expose=[80], network_mode=dual_stack)
    ipv4, ipv6 = addresses(containers, web, dual_stack)

    registered = service_of(consul, f"{identity}:{containers.name(web)}:80")

    assert registered["Address"] == ipv4
    tagged = registered["TaggedAddresses"]
    assert tagged["lan_ipv4"] == {"Address": ipv4, "Port": 80}
    assert tagged["lan_ipv6"] == {"Address": ipv6, "Port": 80}


def test_an_ipv6_registration_passes_its_http_check_through_a_bracketed_url(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
    dual_stack: str,
) -> None:
    started(start_registrator, consul.uri, identity, "--internal")
    env = {
        "SERVICE_ADDRESS_FAMILY": "ipv6",
        "SERVICE_CHECK_HTTP": "/index.html",
        "SERVICE_CHECK_TCP": "true",
        "SERVICE_CHECK_INTERVAL": "1s",
    }
    web = containers.run(env=env, expose=[80], network_mode=dual_stack)
    _, ipv6 = addresses(containers, web, dual_stack)
    service_id = f"{identity}:{containers.name(web)}:80"

    http = wait_for_status(consul, f"service:{service_id}:http", "passing")
    wait_for_status(consul, f"service:{service_id}:tcp", "passing")

    assert f"http://[{ipv6}]:80/index.html" in http["Output"]
    assert service_of(consul, service_id)["Address"] == ipv6


def test_a_port_published_on_an_ipv6_address_registers_that_address(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    started(start_registrator, consul.uri, identity)
    env = {"SERVICE_CHECK_HTTP": "/index.html", "SERVICE_CHECK_INTERVAL": "1s"}
    web = containers.run(env=env, ports={80: ("::1", 0)})
    service_id = f"{identity}:{containers.name(web)}:80"
    port = containers.host_port(web)

    http = wait_for_status(consul, f"service:{service_id}:http", "passing")

    registered = service_of(consul, service_id)
    assert (registered["Address"], registered["Port"]) == ("::1", port)
    assert registered["TaggedAddresses"]["lan_ipv6"] == {"Address": "::1", "Port": port}
    assert f"http://[::1]:{port}/index.html" in http["Output"]


def split_bindings(containers: Containers, env: dict[str, str]) -> tuple[str, int, int]:
    """A container published with `-p 80` whose IPv4 and IPv6 bindings got different host
    ports, and those ports. Docker 20.10 allocates each family's ports on its own, so a few
    containers published on IPv4 only first move the IPv4 allocator ahead."""
    for _ in range(8):
        containers.run(["sleep", "300"], ports={80: ("0.0.0.0", 0)})
        web = containers.run(env=env, ports={80: 0})
        bindings = containers.inspect(web)["NetworkSettings"]["Ports"]["80/tcp"]
        by_ip = {b["HostIp"]: int(b["HostPort"]) for b in bindings}
        if by_ip["0.0.0.0"] != by_ip["::"]:
            return web, by_ip["0.0.0.0"], by_ip["::"]
    raise AssertionError("Docker gave both bindings of every container the same host port")


@pytest.mark.parametrize(
    "ip_and_family",
    [("::1", None), ("::1", "ipv6"), ("127.0.0.1", None), ("127.0.0.1", "ipv4")],
)
def test_the_registered_port_is_the_one_docker_bound_for_the_registered_addresss_family(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
    ip_and_family: tuple[str, str | None],
) -> None:
    host_ip, family = ip_and_family
    started(start_registrator, consul.uri, identity, "--ip", host_ip)
    env = {"SERVICE_CHECK_TCP": "true", "SERVICE_CHECK_INTERVAL": "1s"}
    if family:
        env["SERVICE_ADDRESS_FAMILY"] = family
    web, ipv4_port, ipv6_port = split_bindings(containers, env)
    port = ipv6_port if ":" in host_ip else ipv4_port
    service_id = f"{identity}:{containers.name(web)}:80"

    wait_for_status(consul, f"service:{service_id}:tcp", "passing")

    registered = service_of(consul, service_id)
    assert (registered["Address"], registered["Port"]) == (host_ip, port)
    tag = "lan_ipv6" if ":" in host_ip else "lan_ipv4"
    assert registered["TaggedAddresses"][tag] == {"Address": host_ip, "Port": port}


def test_an_idle_resync_of_dual_stack_containers_writes_nothing(
    counting: CountingProxy,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
    dual_stack: str,
) -> None:
    consul = counting.agent
    reg = started(
        start_registrator, counting.uri, identity, "--internal", "--resync-interval", "0.2"
    )
    check = {"SERVICE_CHECK_HTTP": "/index.html", "SERVICE_CHECK_INTERVAL": "1s"}
    families = [{}, {"SERVICE_ADDRESS_FAMILY": "ipv6"}, {"SERVICE_WEIGHT_PASSING": "3"}]
    webs = [
        containers.run(env={**check, **f}, expose=[80], network_mode=dual_stack) for f in families
    ]
    ids = [f"{identity}:{containers.name(w)}:80" for w in webs]
    for service_id in ids:
        wait_for_status(consul, f"service:{service_id}:http", "passing")
    wait_for_resyncs(reg, 2)

    writes = counting.count()
    wait_for_resyncs(reg, 6)

    assert counting.count() == writes, counting.writes[writes:]
    assert writes == len(ids)  # one registration each, nothing since
    assert all("TaggedAddresses" in consul.services()[i] for i in ids)


# -- what Consul refuses ---------------------------------------------------------------------


def metric(port: int, series: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
    assert match, f"{series} not in /metrics"
    return float(match.group(1))


def test_a_definition_consul_refuses_is_registered_plainer_with_its_reason_written_once(
    counting: CountingProxy,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    """Script checks allowed here, not on the agent: Consul refuses the whole definition."""
    consul = counting.agent
    reg = started(
        start_registrator, counting.uri, identity, "--enable-script-checks",
        "--resync-interval", "0.2", "--metrics-addr", "127.0.0.1:0",
    )  # fmt: skip
    metrics_port = reg.listening_port()
    env = {"SERVICE_CHECK_SCRIPT": "true", "SERVICE_CHECK_INTERVAL": "5s", "SERVICE_ZONE": "a"}
    web = containers.run(env=env, ports={80: 0})
    service_id = f"{identity}:{containers.name(web)}:80"

    stand_in = wait_for_status(
        consul, f"service:{service_id}:refused", "critical", output="Scripts are disabled"
    )
    wait_for_resyncs(reg, 5)

    assert stand_in["Type"] == "ttl"
    assert list(checks_of(consul, service_id)) == [f"service:{service_id}:refused"]
    assert service_of(consul, service_id)["Meta"]["zone"] == "a"
    refused = [line for line in reg.log.splitlines() if "registry.refused" in line]
    assert len(refused) == 1, refused
    assert f"container={containers.name(web)}" in refused[0]
    assert f"service={service_id}" in refused[0]
    registrations = [w for w in counting.writes if w == "/v1/agent/service/register"]
    assert len(registrations) == 2  # the refused one, then the plainer one; never again
    assert metric(metrics_port, 'registrator_errors_total{kind="registry.refused"}') == 1


def test_an_overflowing_timeout_is_caught_before_it_reaches_consul(
    consul: ConsulDevAgent,
    containers: Containers,
    start_registrator: StartRegistrator,
    identity: str,
) -> None:
    reg = started(start_registrator, consul.uri, identity)
    env = {"SERVICE_CHECK_HTTP": "/index.html", "SERVICE_CHECK_TIMEOUT": "99999999999999999999s"}
    web = containers.run(env=env, ports={80: 0})
    check_id = f"service:{identity}:{containers.name(web)}:80:http"

    check = wait_for_status(consul, check_id, "critical", output="longest duration")

    assert check["Type"] == "ttl"
    assert "SERVICE_CHECK_TIMEOUT=99999999999999999999s" in check["Output"]
    reg.wait_for_log("key=SERVICE_CHECK_TIMEOUT value=99999999999999999999s")
    assert "registry.refused" not in reg.log


def checks_of(consul: ConsulDevAgent, service_id: str) -> dict[str, dict[str, Any]]:
    return {
        check_id: check
        for check_id, check in (consul.get("/v1/agent/checks") or {}).items()
        if check.get("ServiceID") == service_id
    }


@pytest.fixture
def agent(consul: ConsulDevAgent) -> Iterator[ConsulAgent]:
    client = ConsulAgent(ConsulTarget(base_url=f"http://{consul.address}"))
    yield client
    client.close()


@pytest.mark.parametrize(
    ("definition", "answer"),
    [
        (
            (
                ("HTTP", "http://127.0.0.1:1/"),
                ("Interval", "10s"),
                ("Timeout", "99999999999999999999s"),
            ),
            "400",
        ),
        ((("HTTP", "http://127.0.0.1:1/"), ("Interval", "0.5ns")), "400"),
        ((("Args", ("true",)), ("Interval", "10s")), "500"),
    ],
    ids=["overflow", "rounds-to-zero", "scripts-off"],
)
def test_the_adapter_takes_the_agents_refusals_as_refusals(
    agent: ConsulAgent, identity: str, definition: tuple[tuple[str, Any], ...], answer: str
) -> None:
    check = Check(f"{identity}:c", "c", "http", definition)
    service = Service(ServiceID(f"{identity}:s:80"), "s", "127.0.0.1", 80, checks=(check,))

    with pytest.raises(RegistryRefused, match=f": {answer} "):
        agent.register(service)


DURATIONS = [
    "1ns", "0.5ns", "1.5ns", ".5s", "5.s", ".s", "1m30s", "1h0.5m", "2\u00b5s", "2\u03bcs",
    "9223372036854775807ns", "9223372036854775808ns", "2562047h47m16.854775807s",
    "2562047h47m16.854775808s", "9223372036.8547758079s", "99999999999999999999s",
    "5000000h5000000h", "1.5e3s", "10", "0", "0s", "1d",
]  # fmt: skip


def test_durations_are_judged_as_the_agent_judges_them(
    consul: ConsulDevAgent, identity: str
) -> None:
    """Each value as an HTTP check's interval: Consul takes exactly the ones we take."""
    for value in DURATIONS:
        try:
            ours = nanoseconds(value) > 0
        except DurationError:
            ours = False
        body = {
            "ID": f"{identity}:d",
            "Name": "d",
            "Checks": [{"HTTP": "http://127.0.0.1:1/", "Interval": value}],
        }
        assert (ours, answer(consul, "/v1/agent/service/register", body)) in {
            (True, 200),
            (False, 400),
        }, value
    consul.request("PUT", f"/v1/agent/service/deregister/{identity}:d")


def answer(consul: ConsulDevAgent, path: str, body: Any) -> int:
    """The agent's status code for `PUT path` with `body`."""
    connection = http.client.HTTPConnection(consul.address, timeout=10)
    try:
        connection.request("PUT", path, body=json.dumps(body))
        return connection.getresponse().status
    finally:
        connection.close()
