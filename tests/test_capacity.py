"""Capacity on paper (generator/capacity.py, `python -m generator capacity`): the figures follow the settings and the
facts, the binding limit moves when a setting makes another limit the tightest, every fact names its source, and
bad input is one line and exit 2."""

from __future__ import annotations

import math
import subprocess
import sys
from unittest import mock

import pytest

from generator import aws_facts, capacity, config, docs, encode_speed
from generator.__main__ import main

from conftest import REPO

ENVS = list(config.ENVIRONMENTS)


def limit(c: capacity.Capacity, name: str) -> capacity.Limit:
    return next(lim for lim in c.limits if lim.name == name)


@pytest.mark.parametrize("env", ENVS)
def test_vcpu_and_memory_needed_are_max_concurrent_times_one_task(env):
    cfg = config.get(env)
    c = capacity.capacity(cfg)
    assert c.vcpu_needed == cfg.max_concurrent_videos * cfg.task_cpu / 1024
    assert c.memory_needed_gib == cfg.max_concurrent_videos * cfg.task_memory / 1024
    assert c.db_connections_needed == cfg.max_concurrent_videos * aws_facts.DB_CONNECTIONS_PER_TASK.value
    vcpu = c.limits[0]
    assert vcpu.name == f"Fargate {c.capacity_type} vCPU" and vcpu.limit == cfg.fargate_vcpu_quota
    assert vcpu.allows == math.floor(cfg.fargate_vcpu_quota / (cfg.task_cpu / 1024))


def test_dev_counts_against_spot_and_the_others_against_on_demand():
    on_demand, spot = aws_facts.FARGATE_ON_DEMAND_VCPU_QUOTA, aws_facts.FARGATE_SPOT_VCPU_QUOTA
    codes = [capacity.capacity(config.get(e)).vcpu_quota_code for e in ("dev", "staging", "prod")]
    assert codes == [spot, on_demand, on_demand]


@pytest.mark.parametrize("env", ENVS)
def test_throughput_scales_inversely_with_minutes(env):
    cfg = config.get(env)
    at = {m: capacity.capacity(cfg, m) for m in (2.5, 5, 10, 20)}
    for m, c in at.items():
        assert c.videos_per_hour == pytest.approx(cfg.max_concurrent_videos * 60 / m)
        assert c.videos_per_hour * m == pytest.approx(at[10].videos_per_hour * 10)
        assert c.starts_per_second == pytest.approx(c.videos_per_hour / 3600)
    # Rate limits allow more videos at once the longer each takes; counts (vCPU, connections) do not move.
    assert limit(at[20], "RunTask").allows == 2 * limit(at[10], "RunTask").allows
    assert limit(at[20], "database connections").allows == limit(at[10], "database connections").allows


@pytest.mark.parametrize("env", ENVS)
def test_with_todays_settings_admission_control_binds_and_the_vcpu_quota_is_next(env):
    c = capacity.capacity(config.get(env))
    assert c.binding == capacity.ADMISSION
    assert c.next_limit.name.endswith("vCPU")
    assert all(lim.allows > c.max_concurrent_videos for lim in c.limits)


def test_the_database_binds_when_a_small_instance_meets_many_videos():
    dev = config.get("dev")
    max_connections = aws_facts.default_max_connections(dev.db_instance_class)
    busy = config.override(dev, fargate_vcpu_quota=400, max_concurrent_videos=150)  # more tasks than connections
    c = capacity.capacity(busy)
    assert c.db_connections_needed == 150 > max_connections
    assert c.binding == "database connections" == c.next_limit.name
    assert "binds first: database connections" in capacity.render_one(c)
    # A larger class gives it room again: max_concurrent_videos binds.
    roomy = capacity.capacity(config.override(busy, db_instance_class="db.m7g.large"))
    assert roomy.binding == capacity.ADMISSION


def test_the_vcpu_quota_binds_when_it_holds_exactly_max_concurrent_videos():
    staging = config.get("staging")
    exactly = staging.fargate_vcpu_quota * 1024 // staging.task_cpu
    c = capacity.capacity(config.override(staging, max_concurrent_videos=exactly))
    assert c.binding == "Fargate On-Demand vCPU"


def test_a_rate_limit_binds_when_videos_are_short_enough():
    # 150 videos of 0.05 minutes (3 s): 50 submissions, StartExecution, RunTask and launches per second.
    cfg = config.override(config.get("dev"), fargate_vcpu_quota=300, max_concurrent_videos=150,
                          db_instance_class="db.m7g.large")
    c = capacity.capacity(cfg, 0.05)
    assert c.binding == "API requests" and limit(c, "API requests").allows == 30  # dev's stage: 10/s
    c = capacity.capacity(config.override(cfg, api_rate_limit=100, api_burst_limit=200), 0.05)
    assert c.binding == "RunTask" and limit(c, "RunTask").allows == 60  # 20 calls/s


def test_prod_assumed_quota_holds_its_max_concurrent_videos_and_dev_staging_fit_a_new_account():
    prod = config.get("prod")
    assert prod.max_concurrent_videos * prod.task_cpu / 1024 <= prod.fargate_vcpu_quota
    new_account = aws_facts.FARGATE_NEW_ACCOUNT_VCPU.value
    for env in ("dev", "staging"):
        cfg = config.get(env)
        assert cfg.fargate_vcpu_quota == new_account
        assert cfg.max_concurrent_videos * cfg.task_cpu / 1024 <= new_account
    assert "request On-Demand vCPU quota L-3032A538 of 64" in capacity.render_one(capacity.capacity(prod))


def test_bursts_beyond_a_bucket_are_reported_with_the_time_to_start_all():
    assert capacity.fill_seconds(20, 20, 20) == 1
    assert capacity.fill_seconds(48, 20, 20) == 3
    assert capacity.fill_seconds(101, 100, 20) == 2
    prod = capacity.render_one(capacity.capacity(config.get("prod")))
    many = capacity.render_one(capacity.capacity(config.override(config.get("prod"), max_concurrent_videos=16)))
    assert "RunTask 16 > burst 20" not in many and "within every bucket" in prod
    many = capacity.render_one(capacity.capacity(config.override(config.get("prod"), task_cpu=1024,
                                                                 task_memory=2048, max_concurrent_videos=48)))
    assert "RunTask 48 > burst 20" in many and "at least 3 s" in many
    assert "within every bucket" in capacity.render_one(capacity.capacity(config.get("dev")))


def test_start_execution_limits_follow_the_region():
    assert capacity.capacity(config.get("prod")).limits[3].detail == "150/s, bucket 800"
    us = capacity.capacity(config.override(config.get("prod"), region="us-east-1"))
    assert limit(us, "StartExecution").limit == 300 and limit(us, "StartExecution").burst == 1300


def test_default_max_connections_follows_the_rds_formula():
    # LEAST({DBInstanceClassMemory/9531392}, 5000), from nominal memory
    assert {c: aws_facts.default_max_connections(c) for c in sorted(aws_facts.DB_INSTANCE_MEMORY)} == {
        "db.m7g.large": 901, "db.t4g.medium": 450, "db.t4g.micro": 112}
    assert aws_facts.default_max_connections("db.x9.huge") is None


def test_every_class_the_environments_use_has_a_memory_figure():
    assert {cfg.db_instance_class for cfg in config.ENVIRONMENTS.values()} <= set(aws_facts.DB_INSTANCE_MEMORY)


def test_an_instance_class_without_a_memory_figure_is_a_config_error_naming_it():
    cfg = config.override(config.get("dev"), db_instance_class="db.x9.huge")
    with pytest.raises(config.ConfigError, match=r"db_instance_class 'db\.x9\.huge'.*known: db\.m7g\.large"):
        capacity.capacity(cfg)


def test_every_fact_has_a_source_url_and_every_assumption_a_basis():
    assert aws_facts.CAPACITY_FACTS and aws_facts.CAPACITY_ASSUMPTIONS
    for fact in aws_facts.CAPACITY_FACTS:
        assert fact.source.startswith("https://docs.aws.amazon.com/"), fact
        assert fact.value > 0 and fact.unit and fact.title
    for assumption in aws_facts.CAPACITY_ASSUMPTIONS:
        assert assumption.basis and not assumption.basis.startswith("http"), "ours, not an AWS page"
    text = capacity.render_sources()
    assert all(f.source in text for f in aws_facts.CAPACITY_FACTS)
    assert all(a.basis in text for a in aws_facts.CAPACITY_ASSUMPTIONS)
    # Everything the figures draw on is listed: the StartExecution pair of each region and every class's memory.
    for region in ("ap-northeast-1", "us-east-1"):
        assert set(aws_facts.start_execution_limits(region)) <= set(aws_facts.CAPACITY_FACTS)
    assert set(aws_facts.DB_INSTANCE_MEMORY.values()) <= set(aws_facts.CAPACITY_FACTS)


def test_numbers_are_shown_readably():
    assert [capacity.number(x) for x in (288.0, 12000, 411.43, 42.857, 0.08, 1 / 300, 0.00001)] == [
        "288", "12,000", "411", "42.86", "0.08", "0.0033", "0.00001"]


# --- command line ----------------------------------------------------------------------------------------------

def test_prints_every_environment_in_order_then_the_sources(capsys):
    assert main(["capacity"]) == 0
    out = capsys.readouterr().out
    heads = [line.split(" ")[0] for line in out.splitlines() if line and not line.startswith(" ")]
    assert heads[:3] == ENVS and out.index("Facts (generator/aws_facts.py)") > out.index("prod (")
    assert out == capacity.render([capacity.capacity(cfg) for cfg in config.ENVIRONMENTS.values()])


def test_env_and_minutes_select_what_is_printed(capsys):
    assert main(["capacity", "--env", "staging", "--minutes", "2.5"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("staging (ap-northeast-1), 2.5 minutes per video\n") and "\nprod (" not in out
    assert "48 videos per hour (2 x 60 / 2.5)" in out


def test_config_overrides_are_what_if(tmp_path, capsys):
    what_if = tmp_path / "what-if.json"
    what_if.write_text('{"prod": {"max_concurrent_videos": 60, "fargate_vcpu_quota": 240}}')
    assert main(["capacity", "--env", "prod", "--config", str(what_if)]) == 0
    assert "60 videos at once" in capsys.readouterr().out


@pytest.mark.parametrize("args, names", [
    (["--minutes", "0"], ["invalid --minutes '0'", "a number from 0.01"]),
    (["--minutes", "-5"], ["invalid --minutes '-5'", "such as 10 or 2.5"]),
    (["--minutes=-0.5"], ["invalid --minutes '-0.5'"]),
    (["--minutes", "ten"], ["invalid --minutes 'ten'", "the minutes one video takes"]),
    (["--minutes", "nan"], ["invalid --minutes 'nan'"]),
    (["--minutes", "inf"], ["invalid --minutes 'inf'", "525600"]),
    (["--minutes", "x" * 10_000], ["invalid --minutes 'xxx", "(10002 characters)"]),
    # float() takes these; a typo or another script's digits must not pass for a number of minutes.
    (["--minutes", "1_0"], ["invalid --minutes '1_0'", "ASCII digits"]),
    (["--minutes", "\u0661\u0660"], ["invalid --minutes '\u0661\u0660'", "ASCII digits"]),
    (["--minutes", "1e1"], ["invalid --minutes '1e1'"]),
    (["--minutes", " 10"], ["invalid --minutes ' 10'"]),
    (["--minutes", "10."], ["invalid --minutes '10.'"]),
    (["--env", "qa"], ["unknown environment 'qa'", "dev, prod, staging"]),
])
def test_bad_input_is_one_line_and_exit_2(capsys, args, names):
    assert main(["capacity", *args]) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and len(lines[0]) <= 1000, lines
    assert all(name in lines[0] for name in names), lines[0]
    assert captured.out == ""


def test_a_config_whose_videos_exceed_the_assumed_quota_is_refused(tmp_path, capsys):
    what_if = tmp_path / "what-if.json"
    what_if.write_text('{"prod": {"max_concurrent_videos": 65}}')
    assert main(["capacity", "--config", str(what_if)]) == 2
    err = capsys.readouterr().err
    assert "prod: invalid max_concurrent_videos 65" in err and "fargate_vcpu_quota 64" in err


def test_help_says_what_it_prints_and_output_is_deterministic():
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "generator", "capacity", *args], cwd=REPO, capture_output=True,
                              text=True, timeout=120)

    helped = run("--help")
    assert helped.returncode == 0
    text = " ".join(helped.stdout.split())
    for what in ("max_concurrent_videos", "vCPU and memory", "throughput per hour", "StartExecution, RunTask",
                 "max_connections", "binds first", "--minutes M", "--env NAME"):
        assert what in text, what
    first, second = run(), run()
    assert first.returncode == 0 and first.stdout == second.stdout and first.stderr == ""


def test_the_docs_block_is_the_commands_output(capsys):
    """docs/capacity.md's block shows exactly what `python -m generator capacity` prints, under that command."""
    assert main(["capacity"]) == 0
    printed = capsys.readouterr().out
    block = next(b for b in docs.BLOCKS if b.marker == "capacity")
    assert block.path == "docs/capacity.md"
    assert block.render({}) == f"```\n$ python -m generator capacity\n{printed}```\n"


def test_minutes_per_video_and_the_execution_timeout_follow_the_measured_encode_speed():
    """A larger task encodes faster: the default minutes and the timeout come from encode_speed, not a guess."""
    from generator import encode_speed

    prod = config.get("prod")
    c = capacity.capacity(prod)
    vcpu = prod.task_cpu / 1024
    assert c.minutes_per_video == encode_speed.minutes_per_video(encode_speed.TYPICAL_SOURCE_MINUTES, vcpu)
    halved = capacity.capacity(config.override(prod, task_cpu=prod.task_cpu // 2, task_memory=prod.task_memory // 2))
    assert halved.minutes_per_video > c.minutes_per_video
    assert halved.execution_timeout_minutes > c.execution_timeout_minutes
    # Two runs of the longest source at 1.5x the measured time must fit: a timeout below it cuts off real work.
    assert c.execution_timeout_minutes >= 2 * prod.max_source_minutes / (encode_speed.REALTIME_PER_VCPU * vcpu)
    longer = capacity.capacity(config.override(prod, max_source_minutes=prod.max_source_minutes * 2))
    assert longer.execution_timeout_minutes > c.execution_timeout_minutes
    assert "0.24x per vCPU" in capacity.render_one(c) and "bench_processor.py" in capacity.render_sources()


def test_each_environment_prints_the_longest_sources_minutes_and_videos_per_hour_at_the_dated_measured_speed():
    """Issue #23: the sizing answers `how many videos an hour` for the worst accepted source too, from the dated
    benchmark figure; a faster measurement must raise it, not leave a stale constant."""
    cap = capacity
    for cfg in config.ENVIRONMENTS.values():
        c = cap.capacity(cfg)
        assert c.longest_source_minutes_per_video == encode_speed.minutes_per_video(cfg.max_source_minutes,
                                                                                     c.task_vcpu)
        assert c.longest_source_minutes_per_video > c.minutes_per_video  # longer than the typical source
        assert c.videos_per_hour_longest == pytest.approx(cfg.max_concurrent_videos * 60
                                                          / c.longest_source_minutes_per_video)
        out = cap.render_one(c)
        assert f"on {encode_speed.MEASURED_ON})" in out
        assert f"for {cfg.max_source_minutes} minutes of source (max_source_minutes)" in out
    dev = config.ENVIRONMENTS["dev"]
    slower = cap.capacity(dev).videos_per_hour_longest
    with mock.patch.object(encode_speed, "REALTIME_PER_VCPU", encode_speed.REALTIME_PER_VCPU * 2):
        assert cap.capacity(dev).videos_per_hour_longest > slower
