# registrator as a container: one per Docker host, the Docker socket mounted read-only.
#
#   docker build -t registrator .
#   docker run -d --name registrator --net=host --restart=unless-stopped \
#     -v /var/run/docker.sock:/var/run/docker.sock:ro registrator consul://127.0.0.1:8500
#
# On a Podman host, the same image with Podman's socket in Docker's place:
#   podman run -d --name registrator --net=host \
#     -v /run/podman/podman.sock:/var/run/docker.sock:ro registrator consul://127.0.0.1:8500
#   (rootless: -v $XDG_RUNTIME_DIR/podman/podman.sock:/var/run/docker.sock:ro)
#
# BASE_IMAGE must provide python3 (>= 3.11) with venv; the default is the usual public image.
# Where no registry or package index is reachable, build from a local base and wheels:
#   docker build --build-arg BASE_IMAGE=registrator-test/python-base:bookworm \
#     --build-arg PIP_NO_INDEX=1 -t registrator .     (scripts/stack.sh base wheels makes both)
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
# Set to 1 to install only from wheels/ (pre-built on a host that reaches an index).
ARG PIP_NO_INDEX
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python3 -m venv /opt/registrator
COPY wheels/ /wheels/
# Dependencies first, in a layer of their own: editing the code does not reinstall them.
COPY pyproject.toml /src/
RUN python3 -c 'import tomllib; print("\n".join(tomllib.load(open("/src/pyproject.toml", "rb"))["project"]["dependencies"]))' >/tmp/requirements.txt \
 && /opt/registrator/bin/pip install -q --find-links /wheels -r /tmp/requirements.txt
COPY README.md /src/
COPY registrator /src/registrator
# The package itself goes in as a wheel; pip then leaves the runtime image.
RUN /opt/registrator/bin/pip wheel -q --no-deps --find-links /wheels --wheel-dir /dist /src \
 && /opt/registrator/bin/pip install -q --no-deps /dist/registrator-*.whl \
 && /opt/registrator/bin/pip uninstall -q -y pip

FROM ${BASE_IMAGE}
# The unprivileged user the entrypoint switches to (no useradd: minimal bases lack it).
RUN echo 'registrator:x:10001:10001:registrator:/nonexistent:/usr/sbin/nologin' >>/etc/passwd \
 && echo 'registrator:x:10001:' >>/etc/group
COPY --from=build /opt/registrator /opt/registrator
COPY image/entrypoint.sh /usr/local/bin/registrator-entrypoint
ENV PATH=/opt/registrator/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    REGISTRATOR_METRICS_ADDR=:9181
EXPOSE 9181
# Liveness of the daemon in this container: `registrator healthcheck` asks its /healthz on
# REGISTRATOR_METRICS_ADDR (change the address through that variable, not --metrics-addr, so
# the check follows). `registrator healthcheck --ready` asks /readyz (Docker and Consul).
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
    CMD ["registrator", "healthcheck"]
ENTRYPOINT ["registrator-entrypoint"]
