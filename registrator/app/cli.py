"""The command line: `registrator [OPTIONS] [REGISTRY_URI]`, the daemon and `--resync`.

The options themselves are in `options.py`; the sub-commands (`explain`, `healthcheck`) in
`commands.py`. This module turns settings into the running parts and runs them. What only a
sub-command or `--metrics-addr` needs (the Prometheus client, the status server) is imported
when it is used: a daemon without them does not carry them in memory.
"""

from __future__ import annotations

import dataclasses
import signal
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from loguru import logger
from pydantic import ValidationError

from registrator import __version__
from registrator.app.actions import describe, summary
from registrator.app.logs import configure
from registrator.app.options import EXIT_USAGE, parse_args, usage_error
from registrator.app.progress import ProgressLog
from registrator.app.settings import (
    Settings,
    check_policy,
    derive_policy,
    for_registry,
    retry_policy,
)
from registrator.core.errors import (
    BackendError,
    ConfigError,
    RegistryDenied,
    RegistryUnavailable,
)
from registrator.docker.engine import DockerEngine, open_engine
from registrator.registries.open import Opened, open_registry
from registrator.runtime.daemon import Daemon
from registrator.runtime.observer import Observer, Observers
from registrator.runtime.probes import ProbeRunner, kept_statuses
from registrator.runtime.reaping import Reaper
from registrator.runtime.reconciler import Reconciler, Statuses
from registrator.runtime.retry import RetryPolicy, Stopped, first_contact
from registrator.runtime.startup import reconciler_for


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["explain"], ["healthcheck"]):
        from registrator.app import commands  # noqa: PLC0415 (only the sub-commands need it)

        return commands.main(argv)
    args = parse_args(argv)
    once = bool(args.pop("once"))
    dry_run = bool(args.pop("dry_run"))
    try:
        settings = Settings(**args)
        opened = open_from(settings)
    except ValidationError as e:
        return usage_error(e)
    except ConfigError as e:
        print(f"registrator: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    configure(level=settings.log_level, fmt=settings.log_format)
    try:
        return run(settings, opened, once=once, dry_run=dry_run)
    except (BackendError, ConfigError) as e:
        logger.error("registrator.failed", error=str(e))
        print(f"registrator: error: {e}", file=sys.stderr)
        return 1
    finally:
        opened.close()


def open_from(settings: Settings) -> Opened:
    """The registry the settings name (see `registries.open`)."""
    return open_registry(
        settings.registry_uri,
        ttl=settings.ttl,
        ttl_refresh=settings.ttl_refresh,
        health=settings.kv_health,
        session_ttl=settings.session_ttl,
    )


def run(settings: Settings, opened: Opened, *, once: bool = False, dry_run: bool = False) -> int:
    retry = retry_policy(settings, one_shot=once)
    stop = threading.Event()
    _on_signals(stop.set)
    reported = bool(settings.metrics_addr)
    runner = None if once or opened.own_node is None else ProbeRunner(reported=reported)
    observer = _observer(settings, opened, once=once, reports=runner)
    connect = retry.call if once else retry.forever
    try:
        engine = partial(open_engine, only_label=settings.require_label)
        docker = connect("docker.connect", engine, stop=stop)
    except Stopped:
        return 0
    checked = for_registry(settings, keyed=opened.keyed)
    identity = settings.hostname or docker.host_name() or socket.gethostname()
    policy = dataclasses.replace(derive_policy(checked, identity), connect=opened.kind == "consul")
    probed = _agentless(opened, identity, settings.ip, runner)
    reconciler = reconciler_for(
        docker, opened.registry, policy, retry=retry, stop=stop, observer=observer, statuses=probed
    )
    _log_started(identity, opened, docker)
    if once:
        return _resync_once(reconciler, dry_run=dry_run)
    if not _first_contact(settings, opened, reconciler, stop):
        return 0
    daemon = Daemon(
        reconciler,
        docker,
        resync_interval=settings.resync_interval,
        agent_check_interval=settings.agent_check_interval,
        refresh_interval=0 if opened.agentless else check_policy(checked).refresh_interval,
        heartbeat=opened.heartbeat,
        heartbeat_interval=opened.heartbeat_interval,
        probes=runner,
        reaper=_reaper(settings, opened, policy.hostname, stop=stop, retry=retry),
        retry=retry,
        stop=stop,
        observer=observer,
    )
    return _serve(settings, daemon, reconciler)


def _log_started(identity: str, opened: Opened, docker: DockerEngine) -> None:
    logger.info(
        "registrator.started", version=__version__, hostname=identity, registry=opened.where
    )
    for feature, limitation in docker.limitations().items():
        logger.warning("docker.limitation", feature=feature, limitation=limitation)


def _agentless(
    opened: Opened, identity: str, ip: str, runner: ProbeRunner | None
) -> Statuses | None:
    """Catalog mode: the node is the host identity at `--ip`; the daemon's `runner` probes the
    checks, a one-shot `--resync` keeps the statuses the catalog holds. Neither for an agent."""
    if opened.own_node is None:
        return None
    opened.own_node(identity, ip)
    return runner.statuses if runner else kept_statuses


def _reaper(
    settings: Settings, opened: Opened, node: str, *, stop: threading.Event, retry: RetryPolicy
) -> Callable[[], None] | None:
    """Catalog mode: the reaper of the fleet's dead hosts (the daemon runs it on a thread)."""
    if opened.liveness is None:
        return None
    reaper = Reaper(
        opened.liveness, node=node, reap_after=settings.reap_after, stop=stop, retry=retry
    )
    return reaper.run


def _first_contact(
    settings: Settings, opened: Opened, reconciler: Reconciler, stop: threading.Event
) -> bool:
    """gliderlabs' -retry-attempts/-retry-interval; False when stopped while waiting."""
    try:
        first_contact(
            f"{opened.kind}.connect",
            opened.registry.advertise_address,
            attempts=settings.retry_attempts,
            interval=settings.retry_interval / 1000,
            stop=stop,
        )
    except RegistryDenied as e:
        reconciler.report_denied(e)  # not fatal: the daemon retries until the token is fixed
    except RegistryUnavailable:
        if stop.is_set():
            return False
        raise
    return True


#: How long a thread holding the GIL keeps it when another wants it (Python's default: 5 ms).
#: A full pass parsing a few hundred services must not hold an event that long.
SWITCH_INTERVAL = 0.001


def _serve(settings: Settings, daemon: Daemon, reconciler: Reconciler) -> int:
    """Run the daemon until a signal stops it; deregister everything first if asked to."""
    sys.setswitchinterval(SWITCH_INTERVAL)
    _on_signals(daemon.request_stop)
    daemon.run()
    if settings.deregister_on_exit:
        _print_errors(reconciler.release().errors)
    logger.info("registrator.stopped")
    return 0


def _observer(
    settings: Settings, opened: Opened, *, once: bool, reports: ProbeRunner | None
) -> Observer:
    """Progress lines always; metrics and the status endpoints when --metrics-addr is set
    (in catalog mode, with the TTL checks' reports)."""
    progress = ProgressLog()
    if once or not settings.metrics_addr:
        return progress
    from registrator.app.metrics import Metrics  # noqa: PLC0415 (prometheus_client: only here)
    from registrator.app.status import serve_status  # noqa: PLC0415

    metrics = Metrics()
    server = serve_status(settings.metrics_addr, metrics=metrics, registry=opened, reports=reports)
    logger.info("status.listening", address=settings.metrics_addr, port=server.port)
    return Observers(metrics, progress)


def _resync_once(reconciler: Reconciler, *, dry_run: bool) -> int:
    if dry_run:
        todo = reconciler.preview()
        for action in todo.actions:
            print(f"would {describe(action)}")
        print(summary(todo.count(), unchanged=todo.unchanged, conditional=True))
        return 0
    outcome = reconciler.full()
    print(summary(outcome.done, unchanged=outcome.plan.unchanged))
    remaining = reconciler.preview()
    if outcome.ok and remaining.empty:
        return 0
    _print_errors(outcome.errors)
    if not remaining.empty:
        print(
            "registrator: error: the registry still differs from Docker: "
            + summary(remaining.count(), unchanged=remaining.unchanged, conditional=True),
            file=sys.stderr,
        )
    return 1


def _print_errors(errors: Sequence[str]) -> None:
    for error in errors:
        print(f"registrator: error: {error}", file=sys.stderr)


def _on_signals(handler: Any) -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: handler())
