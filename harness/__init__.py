"""The real stack that the integration tests and the benchmarks run registrator against.

Real processes, each of the caller's own: a Consul dev agent and Prometheus on free loopback
ports, a private dockerd, the registrator CLI; and the waits around them. Tests and benchmarks
import it; it imports neither, and the wheel does not ship it.

    stack       ROOT, CACHE, TEST_IMAGE, TEST_LABEL: where scripts/stack.sh put things
    waits       wait_until
    processes   the registrator CLI as a process, stop_process
    ports       start_on_free_ports (a server's start, retried on fresh ports), refusing_port
    consul      ConsulDevAgent
    prometheus  PrometheusServer
    dockerd     PrivateDockerd
    podman      PodmanService
"""

from harness.consul import ConsulDevAgent, consul_binary
from harness.dockerd import PrivateDockerd
from harness.podman import PodmanService
from harness.ports import AddressInUse, refusing_port, start_on_free_ports
from harness.processes import CLI, RegistratorProcess, stop_process
from harness.prometheus import PrometheusServer, prometheus_binary
from harness.stack import CACHE, ROOT, TEST_IMAGE, TEST_LABEL
from harness.waits import wait_until

__all__ = [
    "CACHE",
    "CLI",
    "ROOT",
    "TEST_IMAGE",
    "TEST_LABEL",
    "AddressInUse",
    "ConsulDevAgent",
    "PodmanService",
    "PrivateDockerd",
    "PrometheusServer",
    "RegistratorProcess",
    "consul_binary",
    "prometheus_binary",
    "refusing_port",
    "start_on_free_ports",
    "stop_process",
    "wait_until",
]
