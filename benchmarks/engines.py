"""The engine a run measures against: the machine's Docker, or a Podman API service of the run's
own (`--engine podman`), reached by everything in the run through `DOCKER_HOST`.

docker-py, the floor's raw calls and the subjects' processes all read `DOCKER_HOST`, so one
environment variable points the whole run at an engine; the scenarios do not change.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import docker

from harness import TEST_IMAGE, PodmanService
from registrator.docker import podman

ENGINES = ("docker", "podman")


@contextmanager
def engine(name: str) -> Iterator[str]:
    """The run's engine, described ("podman 4.3.1"), `DOCKER_HOST` pointing at it meanwhile."""
    if name == "docker":
        api = docker.APIClient(**docker.utils.kwargs_from_env())
        try:
            yield f"docker {api.version()['Version']}"
        finally:
            api.close()
        return
    service = PodmanService.new()
    before = os.environ.get("DOCKER_HOST")
    try:
        with docker.APIClient(**docker.utils.kwargs_from_env()) as source:
            service.start().load_image(TEST_IMAGE, source=source)
        os.environ["DOCKER_HOST"] = service.host
        yield f"podman {service.api.version()['Version']}"
    finally:
        if before is None:
            os.environ.pop("DOCKER_HOST", None)
        else:
            os.environ["DOCKER_HOST"] = before
        service.remove()


def is_podman(api: docker.APIClient) -> bool:
    """Whether the engine is Podman (its event filter knows `die` as `died`)."""
    return podman.is_podman(api.version())
