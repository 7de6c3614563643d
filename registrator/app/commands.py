"""Sub-commands beside the daemon: `registrator explain` and `registrator healthcheck`.

The daemon's command line has an optional positional REGISTRY_URI, so a sub-command is
recognised by its first word before the normal parse. Each takes every daemon option, with
the same spellings and `REGISTRATOR_*` variables: paste the daemon's command line after the
sub-command and it sees exactly what the daemon sees.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from collections.abc import Sequence

from pydantic import ValidationError

from registrator.app import explain
from registrator.app.listen import parse_listen_address
from registrator.app.logs import configure
from registrator.app.options import EXIT_USAGE, parse_args, usage_error
from registrator.app.settings import Settings, derive_policy, for_registry
from registrator.core.errors import ConfigError
from registrator.registries.open import open_registry

EXPLAIN_USAGE = """usage: registrator explain [OPTIONS] [REGISTRY_URI] CONTAINER

Print the services and checks registrator derives from CONTAINER (a name or an ID) under
OPTIONS (any of the daemon's), whether Consul holds them, and every port or key it skipped
and why. Reads only; writes nothing.
"""
HEALTHCHECK_USAGE = """usage: registrator healthcheck [--ready] [OPTIONS]

Exit 0 when the daemon on this host answers /healthz (with --ready: /readyz) on
--metrics-addr (or REGISTRATOR_METRICS_ADDR); 1 otherwise.
"""


def main(argv: Sequence[str]) -> int:
    """Run the sub-command named by `argv[0]` (explain or healthcheck)."""
    command, rest = argv[0], list(argv[1:])
    if command == "explain":
        return _explain(rest)
    return _healthcheck(rest)


def _settings(argv: list[str]) -> Settings | int:
    """The daemon's options, parsed exactly as the daemon parses them; an exit status on error."""
    args = parse_args(argv)
    args.pop("once")
    args.pop("dry_run")
    try:
        return Settings(**args)
    except ValidationError as e:
        return usage_error(e)


def _usage(text: str, argv: list[str]) -> int | None:
    """Print `text` for -h/--help (exit 0); None when the command line asks for no help."""
    if "-h" in argv or "--help" in argv:
        print(text, end="")
        return 0
    return None


def _explain(argv: list[str]) -> int:
    helped = _usage(EXPLAIN_USAGE, argv)
    if helped is not None:
        return helped
    if not argv or argv[-1].startswith("-"):
        print(EXPLAIN_USAGE, end="", file=sys.stderr)
        print("registrator explain: error: CONTAINER must come last", file=sys.stderr)
        return EXIT_USAGE
    settings = _settings(argv[:-1])
    if isinstance(settings, int):
        return settings
    try:
        opened = open_registry(
            settings.registry_uri,
            ttl=settings.ttl,
            ttl_refresh=settings.ttl_refresh,
            health=settings.kv_health,
            timeout=explain.TIMEOUT,
        )
    except ConfigError as e:
        print(f"registrator: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    configure(level="ERROR", fmt=settings.log_format)
    settings = for_registry(settings, keyed=opened.keyed)
    return explain.run(argv[-1], settings=settings, opened=opened, policy_for=derive_policy)


def _healthcheck(argv: list[str]) -> int:
    helped = _usage(HEALTHCHECK_USAGE, argv)
    if helped is not None:
        return helped
    ready = "--ready" in argv
    settings = _settings([a for a in argv if a != "--ready"])
    if isinstance(settings, int):
        return settings
    if not settings.metrics_addr:
        print("healthcheck: no --metrics-addr (REGISTRATOR_METRICS_ADDR): nothing to ask")
        return 1
    path = "/readyz" if ready else "/healthz"
    status, body = _get(_local_url(settings.metrics_addr) + path)
    print(f"healthcheck: {path} {status or 'unreachable'} {body.strip()}".rstrip())
    return 0 if status == 200 else 1


def _local_url(address: str) -> str:
    """Where a process on the same host reaches a daemon listening on `address`."""
    host, port = parse_listen_address(address)
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as e:
        return 0, str(getattr(e, "reason", e))
