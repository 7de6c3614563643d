"""`python -m benchmarks.bound --hostname H consul://HOST:PORT`: the least any registrator can
do per event, run as a peer of the benchmark to show where the floor of a latency really is.

    scripts/bench.sh --peer bound='.venv/bin/python -m benchmarks.bound --hostname {hostname}
                                   consul://{consul}'

It reads Docker's events (`start`, `die`) and handles each on the thread that read it: for a
`start`, one inspect and one register PUT of each published TCP port (`HOST:NAME:PORT`, the
bench's layout, at 127.0.0.1 and the host port); for a `die`, one deregister PUT of what it
registered. Nothing else: no labels, no checks, no comparison, no resync, no retry, no
logging; services of containers that die while it is down stay. It uses the daemon's own HTTP
client (`registrator.wire`, kept-alive connections, `TCP_NODELAY`), so what separates it from
registrator is everything registrator does on top of those two requests. Not a registrator:
only a measuring stick.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from typing import Any
from urllib.parse import quote, urlsplit

from registrator.docker.endpoint import docker_endpoint
from registrator.wire import Connections, Endpoint

EVENTS = json.dumps({"type": ["container"], "event": ["start", "die"]})
JSON = {"Content-Type": "application/json"}


class Bound:
    def __init__(self, hostname: str, consul: str) -> None:
        self.hostname = hostname
        self.docker = Connections(docker_endpoint(), timeout=30)
        self.consul = Connections(Endpoint(f"http://{consul}"), timeout=30)
        #: container ID -> the service IDs registered for it
        self.registered: dict[str, list[str]] = {}

    def start(self, container: str) -> None:
        answer = self.docker.request("GET", f"/containers/{container}/json")
        if answer.status != 200:
            return
        data: dict[str, Any] = answer.json()
        name = str(data.get("Name") or "").lstrip("/")
        image = str((data.get("Config") or {}).get("Image") or "").rsplit("/", 1)[-1]
        ports = (data.get("NetworkSettings") or {}).get("Ports") or {}
        ids = []
        for spec, bindings in ports.items():
            port, _, proto = spec.partition("/")
            if proto != "tcp" or not bindings:
                continue
            sid = f"{self.hostname}:{name}:{port}"
            host_port = int(bindings[0]["HostPort"])
            body = {
                "ID": sid,
                "Name": image.split(":")[0],
                "Address": "127.0.0.1",
                "Port": host_port,
            }
            self.consul.request(
                "PUT", "/v1/agent/service/register", body=json.dumps(body).encode(), headers=JSON
            )
            ids.append(sid)
        self.registered[container] = ids

    def die(self, container: str) -> None:
        for sid in self.registered.pop(container, []):
            self.consul.request("PUT", f"/v1/agent/service/deregister/{quote(sid, safe='')}")

    def run(self) -> None:
        stream = self.docker.stream(f"/events?filters={quote(EVENTS)}")
        listed = self.docker.request("GET", "/containers/json").json()
        for row in listed:
            self.start(str(row["Id"]))
        for line in stream.lines():
            event = json.loads(line)
            container = str((event.get("Actor") or {}).get("ID") or "")
            if event.get("Action") == "start":
                self.start(container)
            elif event.get("Action") == "die":
                self.die(container)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bound", description=__doc__)
    p.add_argument("--hostname", required=True)
    p.add_argument("uri", help="consul://HOST:PORT")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    Bound(args.hostname, urlsplit(args.uri).netloc).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
