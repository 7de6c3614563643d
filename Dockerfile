# registrator as a container: run it on every Docker host with the socket mounted read-only.
#   docker build -t registrator .
#   docker run -d --name registrator --net=host \
#     -v /var/run/docker.sock:/var/run/docker.sock:ro registrator consul://127.0.0.1:8500
# BASE_IMAGE must provide python3 (>= 3.11) with pip; the default is the usual public image.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY registrator ./registrator
# A directory of pre-built wheels (wheels/) may be supplied where no package index is reachable.
COPY wheels* /wheels/
RUN python3 -m pip wheel --no-cache-dir --find-links /wheels --wheel-dir /dist .

FROM ${BASE_IMAGE}
COPY --from=build /dist /dist
RUN python3 -m pip install --no-cache-dir --no-index --find-links /dist registrator \
 && rm -rf /dist
ENV PYTHONUNBUFFERED=1
ENTRYPOINT ["registrator"]
