"""Catalog mode against a real Consul 1.8.7 server: registrator's own node, no agent between.

The session's dev agent is a server; `consul-catalog://` writes its catalog directly. Every
test has a host identity of its own, hence a node of its own, removed at teardown.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from benchmarks.proxy import CountingProxy, Exchange
from harness import ConsulDevAgent, wait_until
from harness.ports import refusing_port
from registrator.core.drain import DRAINING
from registrator.registries.catalog.liveness import ALIVE_CHECK
from registrator.runtime.probes import WORKERS as PROBE_WORKERS
from tests.integration.support import Containers, StartRegistrator, run_registrator
from tests.integration.test_consul_access import acl_consul
from tests.integration.test_drain import GRACEFUL, running, stopping

IP = "127.0.0.1"
#: catalog mode's ACL policy (README, ACL): write its own node and the services on it
CATALOG_POLICY = 'node "{node}" {{ policy = "write" }}\nservice_prefix "" {{ policy = "write" }}'
__all__ = ["acl_consul"]  # a fixture of test_consul_access, used here too


@pytest.fixture
def node(consul: ConsulDevAgent, identity: str) -> Iterator[str]:
    """This test's node name (its host identity); the node is removed at teardown."""
    yield identity
    consul.request("PUT", "/v1/catalog/deregister", {"Node": identity})


@pytest.fixture
def proxy(consul: ConsulDevAgent) -> Iterator[CountingProxy]:
    """A proxy in front of the server that counts every request."""
    counting = CountingProxy(consul.address).start()
    yield counting
    counting.stop()


def catalog_node(consul: ConsulDevAgent, node: str) -> dict[str, Any]:
    found: dict[str, Any] = consul.get(f"/v1/catalog/node/{node}") or {}
    return found


def node_services(consul: ConsulDevAgent, node: str) -> dict[str, Any]:
    return dict(catalog_node(consul, node).get("Services") or {})


def node_checks(consul: ConsulDevAgent, node: str) -> dict[str, Any]:
    return {c["CheckID"]: c for c in consul.get(f"/v1/health/node/{node}") or []}


def check_status(consul: ConsulDevAgent, node: str, check_id: str) -> str:
    return str((node_checks(consul, node).get(check_id) or {}).get("Status"))


def catalog_args(consul: ConsulDevAgent, node: str, *extra: str) -> tuple[str, ...]:
    return (f"consul-catalog://{consul.address}", "--hostname", node, "--ip", IP, *extra)


def test_a_container_is_registered_under_registrators_own_node_and_removed_with_it(
    consul: ConsulDevAgent, node: str, containers: Containers, start_registrator: StartRegistrator
) -> None:
    start_registrator(*catalog_args(consul, node))
    web = containers.run(ports={80: 0}, env={"SERVICE_NAME": "web", "SERVICE_TAGS": "a,b"})
    service_id = f"{node}:{containers.name(web)}:80"

    service = wait_until(lambda: node_services(consul, node).get(service_id), what=service_id)

    assert (service["Service"], service["Address"], service["Port"]) == (
        "web",
        IP,
        containers.host_port(web),
    )
    assert service["Tags"] == ["a", "b"]
    assert service["Meta"]["registrator_host"] == node
    held = catalog_node(consul, node)["Node"]
    assert held["Address"] == IP
    assert held["Meta"] == {
        "external-node": "true",
        "external-probe": "true",
        "registrator_host": node,
    }
    containers.api.remove_container(web, force=True)
    wait_until(lambda: service_id not in node_services(consul, node), what=f"{service_id} gone")


def test_an_idle_resync_writes_nothing(
    consul: ConsulDevAgent,
    node: str,
    containers: Containers,
    start_registrator: StartRegistrator,
    proxy: CountingProxy,
) -> None:
    uri = f"consul-catalog://{proxy.address}"
    start_registrator(uri, "--hostname", node, "--ip", IP, "--resync-interval", "1")
    web = containers.run(ports={80: 0}, env={"SERVICE_CHECK_TCP": "true"})
    service_id = f"{node}:{containers.name(web)}:80"
    wait_until(lambda: node_services(consul, node).get(service_id), what=service_id)
    # its liveness session and lock taken (dead hosts) before the quiet passes
    wait_until(lambda: ALIVE_CHECK in node_checks(consul, node), what="its liveness check")
    wait_until(lambda: not _writes_within(proxy, reads=4), timeout=30, what="a quiet pass")
    since = proxy.mark()

    wait_until(lambda: _reads(proxy, since) >= 3, timeout=30, what="three full passes")

    assert [e for e in proxy.exchanges(since=since) if _changes(e)] == []


def _reads(proxy: CountingProxy, since: int) -> int:
    """Full passes since `since`: each reads the node once (`/v1/catalog/node/<node>`)."""
    return sum(e.path.startswith("/v1/catalog/node/") for e in proxy.exchanges(since=since))


def _writes_within(proxy: CountingProxy, *, reads: int) -> bool:
    """Whether the last `reads` node reads had writes among them (still converging)."""
    recent = proxy.exchanges()[-3 * reads :]
    return len(recent) < reads or any(_changes(e) for e in recent)


def _changes(exchange: Exchange) -> bool:
    """A write of this registrator's node or services; not the liveness session's renewal
    (it moves no index), the liveness keys or checks (dead hosts: the nodes of earlier tests on this
    session's agent, stopped, are claimed by whichever registrator runs)."""
    liveness = ("/v1/session/renew/", "/v1/kv/registrator/catalog/")
    if not exchange.write or exchange.path.startswith(liveness):
        return False
    ops = json.loads(exchange.body) if exchange.path == "/v1/txn" else [{}]
    return not all(
        "KV" in op or op.get("Check", {}).get("Check", {}).get("CheckID") == ALIVE_CHECK
        for op in ops
    )


def test_catalog_mode_without_ip_exits_2_with_one_line(consul: ConsulDevAgent) -> None:
    done = run_registrator(f"consul-catalog://{consul.address}", "--resync")

    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert "--ip" in line
    assert "consul-catalog://" in line


def test_resync_and_dry_run_in_catalog_mode(
    consul: ConsulDevAgent, node: str, containers: Containers
) -> None:
    web = containers.run(ports={80: 0})
    service_id = f"{node}:{containers.name(web)}:80"

    preview = run_registrator(*catalog_args(consul, node, "--resync", "--dry-run"))
    assert preview.returncode == 0, preview.stderr
    assert f"would register {service_id}" in preview.stdout
    assert node_services(consul, node) == {}

    done = run_registrator(*catalog_args(consul, node, "--resync"))
    assert done.returncode == 0, done.stderr
    assert service_id in node_services(consul, node)

    again = run_registrator(*catalog_args(consul, node, "--resync", "--dry-run"))
    assert again.returncode == 0, again.stderr
    assert "would" not in again.stdout


def test_a_foreign_node_of_the_same_name_is_never_written(
    consul: ConsulDevAgent, node: str, containers: Containers, start_registrator: StartRegistrator
) -> None:
    foreign = {"Node": node, "Address": "192.0.2.7", "NodeMeta": {"team": "db"}}
    consul.request("PUT", "/v1/catalog/register", foreign)
    proc = start_registrator(*catalog_args(consul, node))
    containers.run(ports={80: 0})

    tried = lambda: proc.log.count("is not registrator's") >= 3  # noqa: E731
    wait_until(tried, timeout=30, what="the node refused, and tried again")

    held = catalog_node(consul, node)
    assert held["Node"]["Meta"] == {"team": "db"}
    assert held["Node"]["Address"] == "192.0.2.7"
    assert node_services(consul, node) == {}
    said = [line for line in proc.log.splitlines() if "is not registrator's" in line]
    assert [line for line in said if " ERROR " in line] == said[:1]


def test_a_script_check_is_refused_in_catalog_mode_with_one_line(
    consul: ConsulDevAgent, node: str, containers: Containers, start_registrator: StartRegistrator
) -> None:
    proc = start_registrator(*catalog_args(consul, node, "--enable-script-checks"))
    web = containers.run(ports={80: 0}, env={"SERVICE_CHECK_SCRIPT": "true"})
    service_id = f"{node}:{containers.name(web)}:80"

    wait_until(lambda: node_services(consul, node).get(service_id), what=service_id)

    refused = [line for line in proc.log.splitlines() if "SERVICE_CHECK_SCRIPT" in line]
    assert len(refused) == 1
    assert containers.name(web) in refused[0]
    assert "catalog mode" in refused[0]
    assert node_checks(consul, node) == {}


def test_pause_puts_the_service_in_catalog_maintenance_and_unpause_lifts_it(
    consul: ConsulDevAgent, node: str, containers: Containers, start_registrator: StartRegistrator
) -> None:
    start_registrator(*catalog_args(consul, node))
    web = containers.run(ports={80: 0})
    service_id = f"{node}:{containers.name(web)}:80"
    wait_until(lambda: node_services(consul, node).get(service_id), what=service_id)
    maintenance = f"_service_maintenance:{service_id}"

    containers.api.pause(web)
    check = wait_until(lambda: node_checks(consul, node).get(maintenance), what=maintenance)
    assert check["Status"] == "critical"
    assert check["ServiceID"] == service_id
    assert _passing(consul, "busybox", service_id) is False

    containers.api.unpause(web)
    wait_until(lambda: maintenance not in node_checks(consul, node), what="maintenance lifted")
    assert _passing(consul, "busybox", service_id) is True


def _passing(consul: ConsulDevAgent, name: str, service_id: str) -> bool:
    query = urllib.parse.urlencode({"passing": "1"})
    entries = consul.get(f"/v1/health/service/{name}?{query}") or []
    return any(e["Service"]["ID"] == service_id for e in entries)


def test_an_http_check_is_probed_by_registrator_and_written_only_when_it_changes(
    consul: ConsulDevAgent,
    node: str,
    containers: Containers,
    start_registrator: StartRegistrator,
    proxy: CountingProxy,
) -> None:
    uri = f"consul-catalog://{proxy.address}"
    start_registrator(uri, "--hostname", node, "--ip", IP)
    env = {
        "SERVICE_CHECK_HTTP": "/index.html",
        "SERVICE_CHECK_INTERVAL": "1s",
        "SERVICE_CHECK_FAILURES_BEFORE_CRITICAL": "2",
    }
    web = containers.run(ports={80: 0}, env=env)
    check_id = f"service:{node}:{containers.name(web)}:80:http"

    def status() -> str:
        return str((node_checks(consul, node).get(check_id) or {}).get("Status"))

    wait_until(lambda: status() == "passing", timeout=30, what=f"{check_id} passing")
    assert _passing(consul, "busybox", check_id.removeprefix("service:").removesuffix(":http"))
    containers.exec(web, "mv", "/www/index.html", "/www/away.html")
    wait_until(lambda: status() == "critical", timeout=30, what=f"{check_id} critical")
    assert "404" in node_checks(consul, node)[check_id]["Output"]
    containers.exec(web, "mv", "/www/away.html", "/www/index.html")
    wait_until(lambda: status() == "passing", timeout=30, what=f"{check_id} passing again")

    wait_until(lambda: ALIVE_CHECK in node_checks(consul, node), what="its liveness check")
    since = proxy.mark()
    wait_until(lambda: _reads(proxy, since) >= 2, timeout=30, what="two full passes")
    assert [e for e in proxy.exchanges(since=since) if _changes(e)] == []


def test_explain_shows_the_probe_results_in_catalog_mode(
    consul: ConsulDevAgent, node: str, containers: Containers
) -> None:
    web = containers.run(ports={80: 0}, env={"SERVICE_CHECK_HTTP": "/", "SERVICE_CHECK_TCP": "1"})
    name = containers.name(web)

    done = run_registrator("explain", *catalog_args(consul, node), name, isolated=False)

    assert done.returncode == 0, done.stderr
    assert "probes run by registrator (2):" in done.stdout
    assert f"service:{node}:{name}:80:http: passing now (HTTP GET" in done.stdout
    assert f"service:{node}:{name}:80:tcp: passing now (TCP connect" in done.stdout


def test_docker_stop_puts_a_draining_container_out_of_passing_answers_before_it_exits(
    consul: ConsulDevAgent, node: str, containers: Containers, start_registrator: StartRegistrator
) -> None:
    start_registrator(*catalog_args(consul, node))
    web = containers.run(GRACEFUL, ports={80: 0}, create={"stop_timeout": 10})
    service_id = f"{node}:{containers.name(web)}:80"
    wait_until(lambda: _passing(consul, "busybox", service_id), what=f"{service_id} passing")
    maintenance = f"_service_maintenance:{service_id}"

    with stopping(containers, web):
        check = wait_until(lambda: node_checks(consul, node).get(maintenance), what="drained")
        assert check["Notes"] == DRAINING
        assert not _passing(consul, "busybox", service_id)
        assert running(containers, web)
    wait_until(lambda: service_id not in node_services(consul, node), what="deregistered")


def _token(consul: ConsulDevAgent, name: str, rules: str) -> str:
    consul.request("PUT", "/v1/acl/policy", {"Name": name, "Rules": rules})
    token = consul.request("PUT", "/v1/acl/token", {"Policies": [{"Name": name}]})
    return str(token["SecretID"])


def test_a_token_without_node_write_is_said_once_and_the_documented_one_works(
    acl_consul: ConsulDevAgent,
    identity: str,
    containers: Containers,
    start_registrator: StartRegistrator,
) -> None:
    weak = _token(acl_consul, "services-only", 'service_prefix "" { policy = "write" }')
    uri = f"consul-catalog://{acl_consul.address}"
    args = (uri, "--hostname", identity, "--ip", IP)
    web = containers.run(ports={80: 0})
    service_id = f"{identity}:{containers.name(web)}:80"

    denied = start_registrator(*args, env={"CONSUL_HTTP_TOKEN": weak})
    wait_until(lambda: denied.log.count("registry.permission_denied") >= 3, timeout=30)
    said = [line for line in denied.log.splitlines() if " ERROR registry.permission_denied" in line]
    assert len(said) == 1
    assert "node:write" in said[0]
    denied.stop()

    good = _token(acl_consul, "catalog", CATALOG_POLICY.format(node=identity))
    start_registrator(*args, env={"CONSUL_HTTP_TOKEN": good})
    wait_until(lambda: service_id in node_services(acl_consul, identity), what=service_id)


def test_docker_healthcheck_is_mirrored_into_the_catalog_as_it_changes(
    consul: ConsulDevAgent, node: str, containers: Containers, start_registrator: StartRegistrator
) -> None:
    start_registrator(*catalog_args(consul, node))
    second = 1_000_000_000
    health = {"test": ["CMD-SHELL", "cat /tmp/healthy"], "interval": second, "retries": 1}
    web = containers.run(ports={80: 0}, healthcheck={**health, "timeout": second})
    check_id = f"service:{node}:{containers.name(web)}:80:docker-health"

    def status() -> str:
        return str((node_checks(consul, node).get(check_id) or {}).get("Status"))

    wait_until(lambda: status() == "critical", timeout=30, what=f"{check_id} critical")
    containers.exec(web, "touch", "/tmp/healthy")
    wait_until(lambda: status() == "passing", timeout=30, what=f"{check_id} passing")


def test_an_unreachable_server_fails_a_resync_with_one_line_naming_it(node: str) -> None:
    with refusing_port() as port:
        uri = f"consul-catalog://127.0.0.1:{port}"
        done = run_registrator(
            uri, "--hostname", node, "--ip", IP, "--resync", "--give-up-after", "2"
        )

    assert done.returncode == 1
    said = [line for line in done.stderr.splitlines() if line.startswith("registrator: error:")]
    assert len(said) == 1
    assert f"127.0.0.1:{port}" in said[0]


def test_probes_that_hang_never_hold_back_an_event(
    consul: ConsulDevAgent, node: str, containers: Containers, start_registrator: StartRegistrator
) -> None:
    """More hanging probes than the pool has threads (each answers nothing for a minute):
    a container started meanwhile is registered by its event all the same."""
    start_registrator(*catalog_args(consul, node))
    hang = {
        "SERVICE_CHECK_HTTP": "/",
        "SERVICE_CHECK_INTERVAL": "1s",
        "SERVICE_CHECK_TIMEOUT": "60s",
    }
    silent = ["sh", "-c", "while true; do nc -l -p 80 -w 120; done"]  # accepts, never answers
    hanging = [containers.run(silent, ports={80: 0}, env=hang) for _ in range(PROBE_WORKERS + 2)]
    ids = {f"{node}:{containers.name(c)}:80" for c in hanging}
    wait_until(lambda: ids <= set(node_services(consul, node)), timeout=30, what="hanging ones")

    web = containers.run(ports={80: 0})
    service_id = f"{node}:{containers.name(web)}:80"

    # well within the hanging probes' 60 s: the event did not wait for the pool
    wait_until(lambda: service_id in node_services(consul, node), timeout=30, what=service_id)
    assert all(
        c["Status"] == "critical"
        for c in node_checks(consul, node).values()
        if c["ServiceID"] in ids
    )


def test_a_ttl_check_is_driven_by_registrator_from_the_applications_reports(
    consul: ConsulDevAgent,
    node: str,
    containers: Containers,
    start_registrator: StartRegistrator,
    proxy: CountingProxy,
) -> None:
    uri = f"consul-catalog://{proxy.address}"
    proc = start_registrator(uri, "--hostname", node, "--ip", IP, "--metrics-addr", f"{IP}:0")
    port = proc.listening_port()
    web = containers.run(ports={80: 0}, env={"SERVICE_CHECK_TTL": "5s"})
    check_id = f"service:{node}:{containers.name(web)}:80"

    def status() -> str:
        return check_status(consul, node, check_id)

    def report(verb: str = "pass") -> int:
        url = f"http://{IP}:{port}/v1/agent/check/{verb}/{check_id}?note=ok"
        request = urllib.request.Request(url, b"", method="PUT")
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as e:
            return int(e.code)

    wait_until(lambda: status() == "critical", timeout=30, what=f"{check_id} registered")
    wait_until(lambda: report() == 200 and status() == "passing", timeout=30, what="passing")
    wait_until(lambda: status() == "critical", timeout=30, what=f"{check_id} TTL expired")
    assert "TTL expired" in node_checks(consul, node)[check_id]["Output"]
    wait_until(lambda: report() == 200 and status() == "passing", timeout=30, what="again")

    wait_until(lambda: ALIVE_CHECK in node_checks(consul, node), what="its liveness check")
    since = proxy.mark()
    # identical reports all along (each poll reports): nothing to write, and no TTL runs out
    reported = lambda: report() == 200 and _reads(proxy, since) >= 2  # noqa: E731
    wait_until(reported, timeout=30, what="two full passes, reported all along")
    assert [e for e in proxy.exchanges(since=since) if _changes(e)] == []
    assert report("update") == 400
    assert status() == "passing"
