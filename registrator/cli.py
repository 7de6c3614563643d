"""The command line: `registrator [OPTIONS] [REGISTRY_URI]`.

gliderlabs/registrator spells its flags with one dash (`-ip`, `-resync 30`); those spellings
are accepted unchanged beside GNU-style ones, so an existing command line keeps working.
`-resync N` is gliderlabs' periodic resync; `--resync` alone is the one-shot recovery command.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from typing import Any, NoReturn

from loguru import logger
from pydantic import ValidationError

from registrator import __version__
from registrator.checks import CheckPolicy
from registrator.consul_agent import ConsulAgent
from registrator.daemon import Daemon
from registrator.derive import Policy
from registrator.docker_engine import DockerEngine
from registrator.errors import (
    BackendError,
    ConfigError,
    ConsulPermissionDenied,
    ConsulUnavailable,
)
from registrator.logs import configure
from registrator.metrics import Metrics
from registrator.observer import Observer, Observers
from registrator.progress import ProgressLog
from registrator.reconcile import Outcome, Reconciler
from registrator.retry import RetryPolicy, Stopped, first_contact
from registrator.settings import Settings, consul_target
from registrator.status import serve_status

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
            "help": "a TTL check on every service, kept passing while registrator runs",
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
        ("--agent-check-interval",),
        {
            "type": float,
            "metavar": "SECONDS",
            "help": "every SECONDS compare the agent's services with what is known and repair "
            "differences, without asking Docker (default 3; 0: off)",
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
        help="consul://HOST:PORT, consul-tls://HOST:PORT or consul-unix:///path "
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


#: Go's flag package, which gliderlabs uses, reads these as a boolean flag's `=value`.
_GO_BOOLEANS = {"1": True, "t": True, "true": True, "0": False, "f": False, "false": False}


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
        elif value.lower() in _GO_BOOLEANS:
            given[flags[name]] = _GO_BOOLEANS[value.lower()]
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


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["explain"], ["healthcheck"]):
        from registrator import commands  # noqa: PLC0415 - it builds on this module

        return commands.main(argv)
    args = parse_args(argv)
    once = bool(args.pop("once"))
    dry_run = bool(args.pop("dry_run"))
    try:
        settings = Settings(**args)
        consul = ConsulAgent(consul_target(settings.registry_uri))
    except ValidationError as e:
        return _usage_error(e)
    except ConfigError as e:
        print(f"registrator: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    configure(level=settings.log_level, fmt=settings.log_format)
    try:
        return run(settings, consul, once=once, dry_run=dry_run)
    except (BackendError, ConfigError) as e:
        logger.error("registrator.failed", error=str(e))
        print(f"registrator: error: {e}", file=sys.stderr)
        return 1
    finally:
        consul.close()


def _usage_error(error: ValidationError) -> int:
    for item in error.errors():
        option = "--" + "-".join(str(p) for p in item["loc"]).replace("_", "-")
        print(f"registrator: error: {option}: {item['msg']}", file=sys.stderr)
    return EXIT_USAGE


def run(
    settings: Settings, consul: ConsulAgent, *, once: bool = False, dry_run: bool = False
) -> int:
    retry = RetryPolicy()
    stop = threading.Event()
    _on_signals(stop.set)
    observer = _observer(settings, consul, once=once)
    try:
        docker = retry.forever("docker.connect", DockerEngine.connect, stop=stop)
    except Stopped:
        return 0
    identity = settings.hostname or docker.host_name() or socket.gethostname()
    reconciler = Reconciler(
        docker,
        consul,
        _policy(settings, identity),
        retry=retry,
        keep_failed=settings.deregister == "on-success",
        stop=stop,
        observer=observer,
    )
    logger.info("registrator.started", version=__version__, hostname=identity)
    if once:
        return _resync_once(reconciler, dry_run=dry_run)
    try:
        first_contact(
            "consul.connect",
            consul.advertise_address,
            attempts=settings.retry_attempts,
            interval=settings.retry_interval / 1000,
            stop=stop,
        )
    except ConsulPermissionDenied as e:
        reconciler.report_denied(e)  # not fatal: the daemon retries until the token is fixed
    except ConsulUnavailable:
        if stop.is_set():
            return 0
        raise
    daemon = Daemon(
        reconciler,
        docker,
        resync_interval=settings.resync_interval,
        agent_check_interval=settings.agent_check_interval,
        refresh_interval=check_policy(settings).refresh_interval,
        retry=retry,
        stop=stop,
        observer=observer,
    )
    _on_signals(daemon.request_stop)
    daemon.run()
    if settings.deregister_on_exit:
        _print_errors(reconciler.release().errors)
    logger.info("registrator.stopped")
    return 0


def _policy(settings: Settings, identity: str) -> Policy:
    return Policy(
        hostname=identity,
        host_ip=settings.ip,
        tags=settings.tag_list,
        internal=settings.internal,
        explicit=settings.explicit,
        use_ip_from_label=settings.use_ip_from_label,
        network=settings.network,
        require_label=settings.require_label,
        checks=check_policy(settings),
    )


def check_policy(settings: Settings) -> CheckPolicy:
    return CheckPolicy(
        enable_script_checks=settings.enable_script_checks,
        docker_health=settings.docker_health,
        ttl=settings.ttl,
        ttl_refresh=settings.ttl_refresh,
    )


def _observer(settings: Settings, consul: ConsulAgent, *, once: bool) -> Observer:
    """Progress lines always; metrics and the status endpoints when --metrics-addr is set."""
    progress = ProgressLog()
    if once or not settings.metrics_addr:
        return progress
    metrics = Metrics()
    server = serve_status(settings.metrics_addr, metrics=metrics, consul=consul)
    logger.info("status.listening", address=settings.metrics_addr, port=server.port)
    return Observers(metrics, progress)


def _resync_once(reconciler: Reconciler, *, dry_run: bool) -> int:
    if dry_run:
        todo = reconciler.preview()
        for service in todo.register:
            print(
                f"would register {service.id} ({service.name} at {service.address}:{service.port})"
            )
        for service_id in todo.deregister:
            print(f"would deregister {service_id}")
        for update in todo.statuses:
            print(f"would set check {update.check.id} to {update.check.status}")
        print(
            f"{len(todo.register)} to register, {len(todo.deregister)} to deregister, "
            f"{todo.unchanged} unchanged"
        )
        return 0
    outcome = reconciler.reconcile()
    _print_summary(outcome)
    remaining = reconciler.preview()
    if outcome.ok and remaining.empty:
        return 0
    _print_errors(outcome.errors)
    if not remaining.empty:
        print(
            f"registrator: error: Consul still differs from Docker: {len(remaining.register)} "
            f"to register, {len(remaining.deregister)} to deregister",
            file=sys.stderr,
        )
    return 1


def _print_errors(errors: Sequence[str]) -> None:
    for error in errors:
        print(f"registrator: error: {error}", file=sys.stderr)


def _print_summary(outcome: Outcome) -> None:
    print(
        f"registered {outcome.registered}, updated {outcome.updated}, "
        f"deregistered {outcome.deregistered}, unchanged {outcome.plan.unchanged}"
    )


def _on_signals(handler: Any) -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: handler())
