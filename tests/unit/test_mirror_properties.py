"""Property-based: whatever happens to the containers, events keep the in-memory mirror equal to
what the agent holds, and a full pass leaves the agent exactly as Docker says."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from registrator.core.model import Binding, Container, ContainerID, Health, Port
from registrator.core.policy import Policy
from registrator.runtime.retry import RetryPolicy
from registrator.runtime.startup import reconciler_for
from registrator.runtime.work import Changes, FullPass
from tests.unit.fakes import FakeConsul, FakeDocker, compared

IDS = [ContainerID(f"c{n}") for n in range(3)]
#: how a container asks for Consul Connect: not, behind a sidecar (with upstreams), natively
CONNECT = {
    "": {},
    "sidecar": {"SERVICE_80_CONNECT": "sidecar"},
    "upstreams": {"SERVICE_80_CONNECT_UPSTREAMS": "db:9191"},
    "native": {"SERVICE_80_CONNECT": "native"},
}


def container(cid: ContainerID, state: dict[str, object]) -> Container:
    health = state.get("health")
    return Container(
        cid,
        str(state.get("name", cid)),
        "img",
        env={"SERVICE_TAGS": str(state.get("tags", "")), **CONNECT[str(state.get("mesh", ""))]},
        ports=(Port(80, "tcp", (Binding("", 1),)), Port(53, "udp", (Binding("", 2),))),
        running=bool(state.get("running", True)),
        status="running" if state.get("running", True) else "exited",
        paused=bool(state.get("paused", False)),
        exit_code=int(state.get("exit", 0)),  # type: ignore[call-overload]
        health=None if health is None else Health(str(health), f"probe {health}"),
    )


changes = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(["a", "b", "c"]),
        "tags": st.sampled_from(["", "x", "x,y"]),
        "mesh": st.sampled_from(sorted(CONNECT)),
        "running": st.booleans(),
        "paused": st.booleans(),
        "exit": st.sampled_from([0, 1, 137]),
        "health": st.sampled_from([None, "starting", "healthy", "unhealthy"]),
    },
)
steps = st.lists(
    st.tuples(st.sampled_from(IDS), changes, st.sampled_from(["event", "die", "gone", "full"])),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(steps=steps, keep_failed=st.booleans())
def test_events_keep_the_mirror_equal_to_the_agent_and_a_full_pass_is_exact(
    steps: list[tuple[ContainerID, dict[str, object], str]], keep_failed: bool
) -> None:
    docker, consul = FakeDocker(), FakeConsul()
    policy = Policy(hostname="h", keep_failed=keep_failed)
    reconciler = reconciler_for(docker, consul, policy, retry=RetryPolicy.without_waits())
    reconciler.full()
    states: dict[ContainerID, dict[str, object]] = {}
    for cid, change, how in steps:
        state = states.setdefault(cid, {})
        if how == "gone":
            states.pop(cid)
            docker.containers_by_id.pop(cid, None)
        else:
            state.update(change)
            if how == "die":
                state.update(running=False, paused=False)
            docker.add(container(cid, state))
        if how == "full":
            reconciler.full()
        else:
            code = int(state.get("exit", 0)) if how == "die" else None  # type: ignore[call-overload]
            exited = {cid: code} if code is not None else {}
            reconciler.changes(Changes(frozenset({cid}), exited))
        # as the agent lists them: each sidecar read into its service
        assert compared(reconciler.mirror.view()) == compared(consul.services(owner="h"))

    reconciler.full(FullPass.RESYNC | FullPass.REINSPECT)
    writes = consul.writes
    assert reconciler.full(FullPass.RESYNC | FullPass.REINSPECT).plan.empty
    assert consul.writes == writes
    if not keep_failed:  # a kept container renamed meanwhile is adopted only by the same run
        fresh = reconciler_for(docker, consul, policy, retry=RetryPolicy.without_waits())
        assert fresh.preview().empty  # exactly what a registrator starting now would want
