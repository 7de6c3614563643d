"""The command line: gliderlabs spellings, and one clear line for a wrong option."""

from __future__ import annotations

import pytest

from registrator.app.cli import main
from registrator.app.options import build_parser, parse_args
from registrator.app.settings import Settings, derive_policy


def parse(*argv: str) -> dict[str, object]:
    return vars(build_parser().parse_args(list(argv)))


def test_gliderlabs_one_dash_flags_are_accepted() -> None:
    args = parse("-ip", "10.0.0.1", "-resync", "30", "-tags", "prod", "consul://c:8500")

    assert args == {
        "ip": "10.0.0.1",
        "resync_interval": 30.0,
        "tags": "prod",
        "registry_uri": "consul://c:8500",
        "once": False,
        "dry_run": False,
    }


def test_double_dash_resync_alone_is_the_one_shot_command() -> None:
    assert parse("--resync")["once"] is True
    assert parse("--resync-interval", "5")["resync_interval"] == 5.0


def test_unset_options_do_not_hide_the_environment() -> None:
    assert parse() == {"once": False, "dry_run": False}


def test_gliderlabs_boolean_and_valued_flags() -> None:
    args = parse(
        "-internal",
        "-explicit",
        "-cleanup",
        "-deregister",
        "on-success",
        "-useIpFromLabel",
        "ip",
        "-retry-attempts",
        "-1",
        "-retry-interval",
        "500",
        "-ttl",
        "30",
        "-ttl-refresh",
        "15",
    )

    assert args == {
        "once": False,
        "dry_run": False,
        "internal": True,
        "explicit": True,
        "cleanup": True,
        "deregister": "on-success",
        "use_ip_from_label": "ip",
        "retry_attempts": -1,
        "retry_interval": 500,
        "ttl": 30,
        "ttl_refresh": 15,
    }


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--no-such-option"], "--no-such-option"),
        (["-resync", "soon"], "-resync"),
        (["--resync-interval", "-5"], "--resync-interval"),
        (["--log-level", "loud"], "--log-level"),
        (["zookeeper://x:1"], "zookeeper:// is not supported"),
        (["redis://x:1"], "redis://x:1"),
        (["skydns2://x:1/no_such domain"], "skydns2://x:1"),
        (["consulkv://x:1"], "names no key prefix"),
        (["-deregister", "sometimes"], "-deregister"),
        (["-ip", "not an address!"], "--ip"),
        (["--require-label", "=on"], "--require-label"),
        (["-retry-attempts", "-2"], "--retry-attempts"),
        (["-ttl", "-1"], "--ttl"),
        (["-internal=maybe"], "-internal"),
        (["--log-format", "xml"], "--log-format"),
        (["--resync", "30"], "-resync N"),
        (["-useIpFromLabel"], "-useIpFromLabel"),
        (["-ttl-refresh", "10"], "--ttl-refresh"),
        (["-ttl", "10", "-ttl-refresh", "10"], "--ttl-refresh"),
    ],
)
def test_a_wrong_option_exits_2_with_one_line_naming_it(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(main(argv))

    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert len(err.strip().splitlines()) == 1
    assert fragment in err
    assert "Traceback" not in err


def test_a_missing_ca_file_exits_2_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CONSUL_CACERT", "/nonexistent/ca.pem")
        code = main(["consul-tls://127.0.0.1:8501"])

    err = capsys.readouterr().err
    assert code == 2
    assert "/nonexistent/ca.pem" in err
    assert len(err.strip().splitlines()) == 1


def test_derivation_options_reach_the_policy() -> None:
    settings = settings_from(
        "-internal",
        "-explicit",
        "-useIpFromLabel",
        "svc.ip",
        "--network",
        "backend",
        "--require-label",
        "registrator=on",
        "-ip",
        "192.0.2.1",
        "-tags",
        "a,b",
    )

    policy = derive_policy(settings, "host1")

    assert policy.hostname == "host1"
    assert (policy.internal, policy.explicit) == (True, True)
    assert (policy.use_ip_from_label, policy.network) == ("svc.ip", "backend")
    assert (policy.require_label, policy.host_ip, policy.tags) == (
        "registrator=on",
        "192.0.2.1",
        ("a", "b"),
    )


def test_go_style_values_of_gliderlabs_flags() -> None:
    args = parse_args(
        ["-cleanup=true", "-internal=false", "--explicit=1", "-ip=10.0.0.1", "-resync=30"]
    )

    assert args == {
        "once": False,
        "dry_run": False,
        "cleanup": True,
        "internal": False,
        "explicit": True,
        "ip": "10.0.0.1",
        "resync_interval": 30.0,
    }


@pytest.mark.parametrize(
    "argv", [["-useIpFromLabel", "x"], ["--useIpFromLabel", "x"], ["--use-ip-from-label=x"]]
)
def test_every_spelling_of_use_ip_from_label(argv: list[str]) -> None:
    assert parse_args(argv)["use_ip_from_label"] == "x"


@pytest.mark.parametrize(
    ("variable", "value", "field", "expected"),
    [
        ("REGISTRATOR_INTERNAL", "true", "internal", True),
        ("REGISTRATOR_EXPLICIT", "1", "explicit", True),
        ("REGISTRATOR_USE_IP_FROM_LABEL", "svc.ip", "use_ip_from_label", "svc.ip"),
        ("REGISTRATOR_NETWORK", "backend", "network", "backend"),
        ("REGISTRATOR_REQUIRE_LABEL", "opt-in=yes", "require_label", "opt-in=yes"),
        ("REGISTRATOR_RESYNC_INTERVAL", "30", "resync_interval", 30.0),
        ("REGISTRATOR_DEREGISTER", "on-success", "deregister", "on-success"),
    ],
)
def test_environment_supplies_every_option(
    variable: str, value: str, field: str, expected: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)

    assert getattr(settings_from(), field) == expected


@pytest.mark.parametrize(
    ("variable", "argv", "field", "expected"),
    [
        ("REGISTRATOR_INTERNAL=true", ["-internal=false"], "internal", False),
        ("REGISTRATOR_EXPLICIT=false", ["-explicit"], "explicit", True),
        ("REGISTRATOR_NETWORK=a", ["--network", "b"], "network", "b"),
        ("REGISTRATOR_RESYNC_INTERVAL=5", ["-resync", "30"], "resync_interval", 30.0),
        ("REGISTRATOR_TAGS=env", ["-tags", "flag"], "tags", "flag"),
    ],
)
def test_flags_beat_the_environment(
    variable: str,
    argv: list[str],
    field: str,
    expected: object,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(*variable.split("=", 1))

    assert getattr(settings_from(*argv), field) == expected


def settings_from(*argv: str) -> Settings:
    args = parse_args(list(argv))
    del args["once"], args["dry_run"]
    return Settings(**args)
