"""Shared fixtures: every environment's templates, generated once per test session, as parsed JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from generator import config, graph
from generator.render import render_environment
from generator.rules.common import each_resource  # noqa: F401 - for the tests

# moto's EC2 loads some 7,800 default AMIs whenever a backend starts (a third of a second, for every test that makes
# a VPC); nothing here runs an instance. The emulator started by deploy.sh is a separate process and unaffected.
os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")

REPO = Path(__file__).resolve().parent.parent
TEMPLATES = REPO / "templates"


@pytest.fixture(scope="session")
def rendered() -> dict[str, dict[str, str]]:
    """env -> file name -> JSON text, exactly as `python -m generator` would write it."""
    return {name: render_environment(cfg) for name, cfg in config.ENVIRONMENTS.items()}


@pytest.fixture(scope="session")
def templates(rendered) -> dict[str, dict[str, dict]]:
    """env -> tier ("network", ..., "main") -> parsed template."""
    return {env: {name.removesuffix(".json"): json.loads(text) for name, text in files.items()}
            for env, files in rendered.items()}


@pytest.fixture(scope="session")
def fresh_generator_runs(tmp_path_factory) -> dict[str, tuple[Path, str]]:
    """PYTHONHASHSEED -> (output directory, stdout) of `python -m generator --out DIR` in a new interpreter.

    Two seeds, run in parallel: ordering that depends on the hash seed, or any other per-process state, would
    make their outputs differ from each other or from the in-process render.
    """
    runs = {}
    for seed in ("1", "2"):
        out = tmp_path_factory.mktemp(f"hashseed{seed}")
        runs[seed] = out, subprocess.Popen([sys.executable, "-m", "generator", "--out", str(out)], cwd=REPO,
                                           env={**os.environ, "PYTHONHASHSEED": seed}, stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, text=True)
    results = {}
    for seed, (out, process) in runs.items():
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, f"PYTHONHASHSEED={seed}: python -m generator failed:\n{stderr}"
        results[seed] = out, stdout
    return results


def resources_of_type(template: dict, type_: str) -> dict[str, dict]:
    return {k: v for k, v in template.get("Resources", {}).items() if v["Type"] == type_}


def one_resource(template: dict, type_: str) -> dict:
    found = resources_of_type(template, type_)
    assert len(found) == 1, f"expected exactly one {type_}, found {sorted(found)}"
    return next(iter(found.values()))


def statements(policy_document: dict) -> list[dict]:
    return policy_document["Statement"]


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def resolve(templates: dict, env: str, tier: str, value) -> tuple[str, str] | None:
    """(tier, logical id) of the resource a Ref/GetAtt names, through the parent for a Parameter (see graph)."""
    return graph.resolve(templates[env], tier, value)


def sources(templates: dict, env: str, tier: str, value) -> set[tuple[str, str]]:
    """Every resource a value is built from, as (tier, logical id), through the parent's wiring; a deploy-time
    parameter of the parent is ("main", its name) (see graph.trace)."""
    return graph.sources(templates[env], tier, value)


def inline_statements(role: dict) -> list[dict]:
    """Every statement of a role's inline policies (a role resource, or its Properties)."""
    props = role.get("Properties", role)
    return [s for p in props.get("Policies", []) for s in statements(p["PolicyDocument"])]


def grants(templates: dict, env: str, tier: str, role_title: str) -> dict[str, set]:
    """action -> what the role's inline policies allow it on: (tier, logical id) of each resource a Resource
    entry names (through the parent), or the entry itself ("*", an ARN pattern) when it names none.

    A role whose grants are fully described here has no managed policies and no Deny; tests assert both.
    """
    allowed: dict[str, set] = {}
    for s in inline_statements(templates[env][tier]["Resources"][role_title]):
        assert s["Effect"] == "Allow", f"{role_title}: unexpected {s['Effect']} statement {s.get('Sid')}"
        for action in as_list(s["Action"]):
            for resource in as_list(s["Resource"]):
                named = sources(templates, env, tier, resource)
                allowed.setdefault(action, set()).update(named or {json.dumps(resource, sort_keys=True)
                                                                   if not isinstance(resource, str) else resource})
    return allowed


def pop_vpc_function_grants(allowed: dict[str, set], log_group: str, security_group: tuple[str, str]) -> None:
    """Take out of `allowed` (see grants) what every function in the VPC needs, asserting each is scoped: its own
    log group's streams, X-Ray and the describes AWS cannot scope, and network interfaces with its own group."""
    for action in ("logs:CreateLogStream", "logs:PutLogEvents"):
        [streams] = allowed.pop(action)
        assert f"log-group:{log_group}" in streams and streams.count("log-group:") == 1, action
    for action in ("xray:PutTelemetryRecords", "xray:PutTraceSegments",
                   "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"):
        assert allowed.pop(action) == {"*"}, action  # AWS cannot scope these
    for action in ("ec2:AssignPrivateIpAddresses", "ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface",
                   "ec2:UnassignPrivateIpAddresses"):
        enis = allowed.pop(action)
        assert security_group in enis, action  # attaches only with its own group
        assert all(e == security_group or "${AWS::AccountId}:" in e for e in enis), action


def trusted_services(role: dict) -> set[str]:
    """The service principals a role's trust policy lets assume it."""
    props = role.get("Properties", role)
    return {service for s in statements(props["AssumeRolePolicyDocument"]) if s["Effect"] == "Allow"
            for service in as_list(s["Principal"].get("Service", []))}


def subnets_of_kind(templates: dict, env: str, kind: str) -> set[tuple[str, str]]:
    """("network", logical id) of every subnet of a kind: "Public", "Private" (NAT egress) or "Data" (none)."""
    return {("network", title) for title, r in templates[env]["network"]["Resources"].items()
            if r["Type"] == "AWS::EC2::Subnet" and title.startswith(f"{kind}Subnet")}


@pytest.fixture
def moto_account(monkeypatch):
    """A deploytools.bootstrap.Account (ap-northeast-1) inside mock_aws, with dummy credentials (issue #11 tests)."""
    from moto import mock_aws

    from deploytools import bootstrap

    dummy_credentials(monkeypatch)
    with mock_aws():
        yield bootstrap.Account("ap-northeast-1")


def dummy_credentials(monkeypatch) -> None:
    """moto's dummy credentials, and no profile or endpoint of this machine's that could send a call elsewhere."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


def emulator_env(tmp: Path) -> dict[str, str]:
    """The environment of a deploy.sh --local run with its own emulator: a free port, state and build under tmp."""
    import os
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(LOCAL_AWS_PORT=str(port), LOCAL_AWS_STATE_DIR=str(tmp / "local-aws"), BUILD_DIR=str(tmp / "build"),
               DEPLOY_POLL_SECONDS="0.2", NO_COLOR="1")
    return env


# --- CI runs every test: a skip there is a failure that names its reason -----------------------------------------


def running_in_ci() -> bool:
    """GitHub Actions sets CI=true (https://docs.github.com/en/actions/reference/variables-reference); .ci/run too."""
    return os.environ.get("CI", "").lower() in ("true", "1")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.skipped and running_in_ci() and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where every test must run: {reason.removeprefix('Skipped: ')}"
    return report


def pytest_configure(config):
    # Registered here, beside the tests that use it, so --strict-markers accepts it without touching setup.cfg.
    config.addinivalue_line("markers", "media: encodes real video with ffmpeg (seconds each); slow too: CI runs it, "
                                       "the fast loop leaves it out (its unmarked ffmpeg tests stay in)")


def pytest_collection_modifyitems(config, items):
    """A media test (real ffmpeg encodes, seconds each) is slow too: the fast loop's `not slow` leaves it out."""
    for item in items:
        if item.get_closest_marker("media"):
            item.add_marker(pytest.mark.slow)
