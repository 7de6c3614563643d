"""Property-based: whatever a container declares, derivation never raises and stays sane."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from registrator.core.definition import MAX_WEIGHT
from registrator.core.derive import MAX_META_PAIRS, MAX_META_VALUE, derive
from registrator.core.families import family_of
from registrator.core.model import Binding, Container, ContainerID, NetworkAddress, Port
from registrator.core.policy import Policy

_KEYS = ["NAME", "TAGS", "ID", "IGNORE", "NETWORK", "CHECK_HTTP", "REGION", "consul-x", "a.b"]
_KEYS += ["PORT", "ADDRESS_FAMILY", "CHECK_PORT", "WEIGHT_PASSING", "ENABLE_TAG_OVERRIDE"]
_ADDRESSES = ["", "0.0.0.0", "::", "127.0.0.1", "10.0.0.1/24", "2001:db8::1", "nope", "1.2.3.4/99"]

texts = st.text(max_size=40) | st.text(min_size=500, max_size=700) | st.sampled_from(_ADDRESSES)
port_numbers = st.sampled_from([0, 53, 80, 443, 8080, 65535, 70000]) | st.integers(0, 99999)


@st.composite
def service_keys(draw: st.DrawFn) -> str:
    key = draw(st.sampled_from(_KEYS) | st.text(min_size=1, max_size=20))
    if draw(st.booleans()):
        key = f"{draw(port_numbers)}_{key}"
    if draw(st.booleans()):
        key = key.lower()
    return f"SERVICE_{key}"


declarations = st.dictionaries(service_keys() | st.text(max_size=20), texts, max_size=12)
bindings = st.builds(
    Binding, host_ip=st.sampled_from(_ADDRESSES) | st.text(max_size=10), host_port=port_numbers
)
ports = st.builds(
    Port,
    port=port_numbers,
    protocol=st.sampled_from(["tcp", "udp", "sctp"]),
    bindings=st.lists(bindings, max_size=3).map(tuple),
)
addresses = st.sampled_from(_ADDRESSES)
networks = st.dictionaries(
    st.text(max_size=10), st.builds(NetworkAddress, ipv4=addresses, ipv6=addresses), max_size=3
)
modes = st.sampled_from(["default", "host", "none", "bridge", "container:peer"]) | st.text()


def containers(peer: st.SearchStrategy[Container | None]) -> st.SearchStrategy[Container]:
    return st.builds(
        Container,
        id=st.just(ContainerID("c1")),
        name=st.text(max_size=20),
        image=st.text(max_size=40),
        env=declarations,
        labels=declarations,
        running=st.booleans(),
        network_mode=modes,
        ports=st.lists(ports, max_size=5).map(tuple),
        networks=networks,
        network_peer=peer,
    )


policies = st.builds(
    Policy,
    hostname=st.text(min_size=1, max_size=20),
    host_ip=st.sampled_from(["", "192.0.2.1"]),
    advertise_address=st.sampled_from(["", "10.0.0.5"]),
    tags=st.lists(st.text(max_size=10), max_size=3).map(tuple),
    internal=st.booleans(),
    explicit=st.booleans(),
    use_ip_from_label=st.sampled_from(["", "SERVICE_NAME", "ip"]) | st.text(max_size=5),
    network=st.text(max_size=10),
    require_label=st.sampled_from(["", "SERVICE_NAME", "x=", "x=y"]) | st.text(max_size=5),
)


@settings(max_examples=250, deadline=None)
@given(container=containers(st.none() | containers(st.none())), policy=policies)
def test_derivation_never_raises_and_its_output_is_registrable(
    container: Container, policy: Policy
) -> None:
    d = derive(container, policy)

    assert len({s.id for s in d.services}) == len(d.services)
    for s in d.services:
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", s.name)
        assert len(s.meta) <= MAX_META_PAIRS
        assert all(not k.lower().startswith("check_") for k, _ in s.meta)
        assert all(len(v.encode()) <= MAX_META_VALUE for _, v in s.meta)  # Consul counts bytes
        assert 1 <= s.weights.passing <= MAX_WEIGHT
        assert 0 <= s.weights.warning <= MAX_WEIGHT
        assert all(t.key == f"lan_{family_of(t.address)}" for t in s.tagged_addresses)
        assert s.container == container.id
    assert all(p.container == container.name for p in d.problems)
    assert all(len(p.value) < 300 for p in d.problems)
    assert d == derive(container, policy)
