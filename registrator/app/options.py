"""Options: every flag registrator takes, in gliderlabs' spellings and GNU ones.

gliderlabs/registrator spells its flags with one dash (`-ip`, `-resync 30`) and, being a Go
program, also accepts `-flag=value`; those spellings are accepted unchanged beside GNU-style
ones, so an existing command line keeps working. `-resync N` is gliderlabs' periodic resync;
`--resync` alone is the one-shot recovery command. Only flags a user actually gave appear in
the parsed result, so an unset flag never hides a `REGISTRATOR_*` variable.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from pydantic import ValidationError

from registrator import __version__
from registrator.core.flags import parse_flag

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"registrator: error: {message} (see --help)\n")


#: (names, argparse keywords) for every option; dest defaults to the first name.
_OPTIONS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (
        ("--hostname", "-hostname"),
        {
            "help": "host identity in service IDs and ownership Meta "
            "(default: the Docker host's name)"
        },
    ),
    (("--ip", "-ip"), {"help": "address to register for published ports"}),
    (("--tags", "-tags"), {"help": "comma-separated tags added to every service"}),
    (
        ("--resync-interval", "-resync"),
        {
            "type": float,
            "metavar": "SECONDS",
            "help": "full resync every SECONDS (0: start-up only)",
        },
    ),
    (
        ("--internal", "-internal"),
        {"flag": True, "help": "register the container's own IP and exposed port, not the host's"},
    ),
    (
        ("--explicit", "-explicit"),
        {"flag": True, "help": "only register ports that have SERVICE_NAME or SERVICE_<port>_NAME"},
    ),
    (
        ("--use-ip-from-label", "-useIpFromLabel", "--useIpFromLabel"),
        {"metavar": "LABEL", "help": "take the service address from this container label"},
    ),
    (
        ("--network",),
        {
            "metavar": "NAME",
            "help": "with --internal: the network whose container IP is registered",
        },
    ),
    (
        ("--require-label",),
        {"metavar": "LABEL", "help": "only register containers carrying this label"},
    ),
    (
        ("--ttl", "-ttl"),
        {
            "type": int,
            "metavar": "SECONDS",
            "help": "a TTL check on every service, kept passing while registrator runs; "
            "etcd, consulkv, skydns2: the lease's TTL (default 30)",
        },
    ),
    (
        ("--ttl-refresh", "-ttl-refresh"),
        {
            "type": int,
            "metavar": "SECONDS",
            "help": "how often TTL checks are refreshed (default: a third of --ttl)",
        },
    ),
    (
        ("--enable-script-checks",),
        {"flag": True, "help": "allow SERVICE_CHECK_SCRIPT (runs commands on the agent's host)"},
    ),
    (
        ("--docker-health",),
        {
            "action": argparse.BooleanOptionalAction,
            "help": "mirror Docker HEALTHCHECK status into Consul (default: on)",
        },
    ),
    (
        ("--kv-health",),
        {
            "action": argparse.BooleanOptionalAction,
            "help": "etcd, consulkv, skydns2: remove a service's key while its container is "
            "unhealthy, paused or draining (default: on)",
        },
    ),
    (
        ("--cleanup", "-cleanup"),
        {
            "flag": True,
            "help": "accepted for gliderlabs compatibility: stale owned services are "
            "always removed",
        },
    ),
    (
        ("--deregister", "-deregister"),
        {
            "choices": ["always", "on-success"],
            "help": "on-success: keep the service of a container that exited non-zero",
        },
    ),
    (
        ("--drain",),
        {
            "choices": ["maintenance", "deregister", "off"],
            "help": "what a container's services become at its stop signal (docker stop), "
            "until it dies: maintenance (default), deregister, or off",
        },
    ),
    (
        ("--deregister-on-exit",),
        {"flag": True, "help": "deregister every service this registrator owns when it stops"},
    ),
    (
        ("--retry-attempts", "-retry-attempts"),
        {
            "type": int,
            "metavar": "N",
            "help": "retries of the first contact with Consul (-1: forever)",
        },
    ),
    (
        ("--retry-interval", "-retry-interval"),
        {"type": int, "metavar": "MS", "help": "milliseconds between those retries (default 2000)"},
    ),
    (
        ("--give-up-after",),
        {
            "type": float,
            "metavar": "SECONDS",
            "help": "one-shot commands (--resync) stop retrying an unreachable Docker engine or "
            "registry after SECONDS and exit 1 (default 30); the daemon retries forever",
        },
    ),
    (
        ("--agent-check-interval",),
        {
            "type": float,
            "metavar": "SECONDS",
            "help": "every SECONDS compare the agent's services with what is known and repair "
            "differences, without asking Docker (default 3; 0: off)",
        },
    ),
    (
        ("--reap-after",),
        {
            "type": float,
            "metavar": "SECONDS",
            "help": "consul-catalog: deregister a dead host's node SECONDS after it was marked "
            "critical (default 300; 0: never)",
        },
    ),
    (
        ("--session-ttl",),
        {
            "type": int,
            "metavar": "SECONDS",
            "help": "consul-catalog: TTL of the session that keeps this host's node alive "
            "(default 15)",
        },
    ),
    (
        ("--metrics-addr",),
        {"metavar": "HOST:PORT", "help": "serve /metrics, /healthz and /readyz on this address"},
    ),
    (("--log-format",), {"choices": ["text", "json"], "help": "text (default) or json"}),
    (("--log-level",), {"help": "TRACE, DEBUG, INFO, WARNING or ERROR (default INFO)"}),
]


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="registrator",
        description="Keep the local Consul agent's services equal to what runs in Docker.",
        epilog="sub-commands: 'registrator explain [OPTIONS] [REGISTRY_URI] CONTAINER' shows "
        "what registrator derives from a container and why ports or keys were skipped; "
        "'registrator healthcheck [--ready]' asks the daemon's /healthz (or /readyz).",
        allow_abbrev=False,
        argument_default=argparse.SUPPRESS,
    )
    p.add_argument(
        "registry_uri",
        nargs="?",
        metavar="REGISTRY_URI",
        help="consul://HOST:PORT, consul-tls://HOST:PORT, consul-unix:///path, "
        "consulkv://HOST:PORT/PREFIX, etcd://HOST:PORT/PREFIX or skydns2://HOST:PORT/DOMAIN "
        "(default: $CONSUL_HTTP_ADDR, else consul://127.0.0.1:8500)",
    )
    for names, spec in _OPTIONS:
        options = dict(spec)
        if options.pop("flag", False):
            # absent from the parsed args unless given, so REGISTRATOR_* can still set it
            options.update(action="store_const", const=True)
        p.add_argument(*names, dest=_dest(names), **options)
    p.add_argument(
        "--resync",
        dest="once",
        action="store_true",
        default=False,
        help="reconcile once, print a summary and exit (0 when Consul matches Docker)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        default=False,
        help="with --resync: print the plan and write nothing",
    )
    p.add_argument("--version", action="version", version=f"registrator {__version__}")
    return p


def _dest(names: tuple[str, ...]) -> str:
    return names[0].lstrip("-").replace("-", "_")


def _go_booleans(
    parser: argparse.ArgumentParser, argv: Sequence[str]
) -> tuple[list[str], dict[str, bool]]:
    """Take `-cleanup=true` / `-internal=false` (gliderlabs' Go spelling) out of `argv`.

    `=false` must reach the settings as False, so it can beat `REGISTRATOR_INTERNAL=true`.
    """
    flags = {name: _dest(names) for names, spec in _OPTIONS if spec.get("flag") for name in names}
    rest: list[str] = []
    given: dict[str, bool] = {}
    for arg in argv:
        name, equals, value = arg.partition("=")
        if not equals or name not in flags:
            rest.append(arg)
        elif (parsed := parse_flag(value)) is not None:
            given[flags[name]] = parsed
        else:
            parser.error(f"argument {name}: expected true or false, got {value!r}")
    return rest, given


def parse_args(argv: Sequence[str]) -> dict[str, Any]:
    """The options a user actually gave (unset ones are absent, so REGISTRATOR_* apply)."""
    parser = build_parser()
    rest, booleans = _go_booleans(parser, argv)
    args = vars(parser.parse_args(rest))
    args.update(booleans)
    if args["once"] and str(args.get("registry_uri", "")).isdigit():
        parser.error(
            "--resync takes no value; for a resync every N seconds use -resync N "
            "or --resync-interval N"
        )
    return args


def usage_error(error: ValidationError) -> int:
    for item in error.errors():
        option = "--" + "-".join(str(p) for p in item["loc"]).replace("_", "-")
        print(f"registrator: error: {option}: {item['msg']}", file=sys.stderr)
    return EXIT_USAGE
