"""`python -m generator cost` and the cost lines of the review diff (generator/cost/).

Protects: every billable resource type the templates create has a price rule (or a reason it is free); the
arithmetic agrees with a hand calculation; a real change's cost reaches the review with the right sign and size;
quantities follow the templates (not figures typed twice); bad input and an unreachable Price List are one line.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from generator import config, state_machine
from generator.__main__ import main
from generator.cost import calls, model, prices, review
from generator.cost.render import cost_section
from generator.diff import cli as diff_cli
from generator.diff.render import render
from generator.diff.report import diff_templates
from generator.errors import InputError
from generator.render import render_environment

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "cost"
SNAPSHOT = prices.load()
REGION = config.DEFAULT_REGION


def price(key: str) -> float:
    return SNAPSHOT.price(REGION, key).usd


def run_json(capsys, *args: str) -> dict:
    assert main(["cost", *args, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def flat(templates: dict[str, dict[str, dict]]) -> dict[str, dict]:
    """env -> tier -> template, as the conftest fixture holds it, to the diff's `<env>/<tier>.json` map."""
    return {f"{env}/{tier}.json": t for env, tiers in templates.items() for tier, t in tiers.items()}


def estimate(tiers: dict[str, dict], usage: model.Usage | None = None) -> model.Estimate:
    return model.estimate("dev", REGION, tiers, usage or model.Usage(), SNAPSHOT, calls.load())


# ---------------------------------------------------------------- the guard

def test_every_resource_type_the_templates_create_has_a_price_rule_or_a_reason_to_be_free(templates):
    for env, tiers in templates.items():
        assert model.unpriced_types(tiers) == [], (
            f"{env}: a billable type without a price rule: add it to generator/cost/model.py RULES (with its prices "
            "in prices.json), PRICED_AT, or FREE with the reason")
    assert not (model.RULES.keys() & model.FREE.keys()) and not (model.RULES.keys() & model.PRICED_AT.keys())
    assert not (model.FREE.keys() & model.PRICED_AT.keys())
    assert all(len(why) > 8 for why in [*model.FREE.values(), *model.PRICED_AT.values()]), "each reason says why"


def test_a_new_billable_type_without_a_rule_fails_the_guard_and_the_command():
    """A type the model has no rule for (not one the project uses: that one may gain a rule) fails by name."""
    unknown = "AWS::Future::Service"
    assert unknown not in {*model.RULES, *model.PRICED_AT, *model.FREE}
    tiers = {"media": {"Resources": {"Thing": {"Type": unknown}, "Role": {"Type": "AWS::IAM::Role"}}}}
    assert model.unpriced_types(tiers) == [unknown]
    with pytest.raises(InputError, match=f"no price rule for {unknown}"):
        estimate(tiers)


def test_every_environment_is_priced_from_its_regions_snapshot(templates):
    for env, tiers in templates.items():
        e = model.estimate(env, config.get(env).region, tiers, model.Usage(), SNAPSHOT, calls.load())
        assert e.fixed_usd > 0 and e.per_video_usd > 0
        assert abs(sum(e.by_tier().values()) - e.fixed_usd) < 1e-9, "the tiers add up to the total"


def test_each_price_names_its_page_offer_usage_type_and_when_it_was_read():
    raw = json.loads(prices.SNAPSHOT.read_text(encoding="utf-8"))
    assert raw["date"] == SNAPSHOT.date and set(raw["regions"]) >= {c.region for c in config.ENVIRONMENTS.values()}
    for (_region, key), p in SNAPSHOT.prices.items():
        assert p.source.startswith("https://aws.amazon.com/"), key
        assert p.offer and p.usage_type.startswith("APN1-"), key
        assert re.fullmatch(r"transcribed, \d{4}-\d\d-\d\d, unverified|read, \d{4}-\d\d-\d\d, .+, SKU .+",
                            p.status), key
        assert p.usd > 0, key


# ---------------------------------------------------------------- the arithmetic, by hand

def test_a_hand_calculated_fixture_agrees_with_the_command_within_one_percent(capsys):
    """tests/fixtures/cost/hand/dev/small.json: one NAT gateway, a db.t4g.micro (20 GB gp3, 7 days of backups,
    Single-AZ), one cache.t4g.micro node, a Fargate task of 1 vCPU and 2 GB on demand. This proves the arithmetic,
    not the prices: the prices are the snapshot's (transcribed, unverified), asserted first.

    Fixed a month (730 hours):
        NAT gateway          730 x 0.062                         = 45.26
        db.t4g.micro         730 x 0.025                         = 18.25
        gp3 storage          20 GB x 0.138                       =  2.76
        backups beyond free  20 GB x 2% a day x 7 days = 2.8 GB x 0.095 = 0.266
        cache.t4g.micro      730 x 0.025                         = 18.25
                                                          total  = 84.786
    Per video (10 minutes = 1/6 hour, model assumption: 1 MB of logs, no NAT traffic):
        vCPU       1 x 1/6 x 0.05056                             = 0.0084267
        memory     2 x 1/6 x 0.00553                             = 0.0018433
        logs       1/1024 GB x 0.76                              = 0.0007422
                                                          total  = 0.0110122
    A month at 1,000 videos: 84.786 + 1,000 x 0.0110122           = 95.798
    """
    assert [price(k) for k in ("nat_gateway_hour", "rds_instance_hour:db.t4g.micro", "rds_gp3_gb_month",
                               "rds_backup_gb_month", "elasticache_node_hour:cache.t4g.micro", "fargate_vcpu_hour",
                               "fargate_gb_hour", "logs_ingestion_gb")] == \
        [0.062, 0.025, 0.138, 0.095, 0.025, 0.05056, 0.00553, 0.76], \
        "the snapshot's prices changed: redo the hand calculation in this docstring"
    assert SNAPSHOT.hours_per_month == 730
    assert (model.RDS_BACKUP_DAILY_CHANGE, model.LOG_MB_PER_VIDEO, model.NAT_GB_PER_VIDEO) == (0.02, 1.0, 0.0)
    [dev] = run_json(capsys, "--env", "dev", "--templates", str(FIXTURES / "hand"), "--minutes-per-video", "10",
                     "--videos-per-month", "1000")["environments"]
    assert dev["fixed_monthly_usd"] == pytest.approx(84.786, rel=0.01)
    assert dev["per_video_usd"] == pytest.approx(0.0110122, rel=0.01)
    assert dev["monthly_usd_at_usage"] == pytest.approx(95.798, rel=0.01)


def test_task_time_moves_only_fargate_and_in_proportion(templates):
    short, long_ = (estimate(templates["staging"], model.Usage(minutes_per_video=m)) for m in (10, 30))
    fargate = {k: v for k, v in short.by_resource(short.per_video).items() if k.endswith("TaskDefinition")}
    [cost_at_10] = fargate.values()
    logs = sum(line.usd for line in short.per_video if line.resource == "TaskDefinition" and "log" in line.item)
    assert long_.per_video_usd - short.per_video_usd == pytest.approx(2 * (cost_at_10 - logs))
    assert long_.fixed_usd == short.fixed_usd


def test_task_size_and_capacity_type_come_from_the_templates(templates):
    dev, prod = estimate(templates["dev"]), estimate(templates["prod"])
    assert {line.price_key for line in dev.per_video if "Fargate" in line.item} == \
        {"fargate_spot_vcpu_hour", "fargate_spot_gb_hour"}, "dev's state machine runs its tasks on FARGATE_SPOT"
    assert {line.price_key for line in prod.per_video if "Fargate" in line.item} == \
        {"fargate_vcpu_hour", "fargate_gb_hour"}
    bigger = copy.deepcopy(templates["prod"])
    task = next(r for r in bigger["workflow"]["Resources"].values() if r["Type"] == "AWS::ECS::TaskDefinition")
    task["Properties"]["Cpu"], task["Properties"]["Memory"] = "8192", "16384"
    fixed = model.Usage(minutes_per_video=10)
    fargate = [sum(line.usd for line in e.per_video if "Fargate" in line.item)
               for e in (estimate(templates["prod"], fixed), estimate(bigger, fixed))]
    assert fargate[1] == pytest.approx(2 * fargate[0]), "twice the task for as long, twice the Fargate cost"
    # By default the task time follows the measured encode speed: twice the vCPU encode in half the time, so only
    # the fixed minutes of a run (start, fetch, upload) cost more.
    measured = [sum(line.usd for line in e.per_video if "Fargate" in line.item) for e in (prod, estimate(bigger))]
    assert measured[0] < measured[1] < 2 * measured[0]


def test_transitions_are_counted_from_the_state_machine_definition(templates):
    machine = next(r for r in templates["dev"]["workflow"]["Resources"].values()
                   if r["Type"] == "AWS::StepFunctions::StateMachine")
    definition = machine["Properties"]["Definition"]
    success, failure = model.paths(definition)
    # The sketch's 3 retries, written out as states (ExamineTaskFailure ... WaitToRetry -> ProcessVideo): each one
    # enters that loop again, so a failed video costs more transitions than the task runs alone.
    retries = state_machine.PROCESS_RETRY["MaxAttempts"]
    assert failure is not None and failure.task_runs == 1 + retries
    assert failure.transitions > success.transitions + 4 * retries
    assert failure.transitions > success.transitions and success.publishes == failure.publishes == 1
    longer = copy.deepcopy(definition)  # one more state on the success path: one more transition
    longer["States"]["Extra"] = {"Type": "Pass", "Next": definition["StartAt"]}
    longer["StartAt"] = "Extra"
    assert model.paths(longer)[0].transitions == success.transitions + 1


def test_requests_per_job_are_the_recorded_calls(templates):
    """DynamoDB units per video follow job_calls.json (tests/test_cost_calls.py records it)."""
    recorded = calls.load().invocations
    table = next(r for r in templates["dev"]["jobs"]["Resources"].values() if r["Type"] == "AWS::DynamoDB::Table")
    indexes = len(table["Properties"].get("GlobalSecondaryIndexes", []))
    writes = sum(recorded[n].write_units * times for n, times in
                 (("submit", 1), ("status", model.STATUS_READS_PER_VIDEO), ("execution_ended", 1)))
    [line] = [x for x in estimate(templates["dev"]).per_video if x.price_key == "dynamodb_write_request_unit"]
    assert line.quantity == writes * (1 + indexes)


# ---------------------------------------------------------------- the command

def test_text_prints_each_environment_tier_and_the_assumptions(capsys):
    assert main(["cost"]) == 0
    out = capsys.readouterr().out
    for env in config.ENVIRONMENTS:
        assert re.search(rf"^{env} \(ap-northeast-1\), prices of {SNAPSHOT.date} \(unverified", out, re.M)
    assert "0.24x realtime per vCPU" in out and "bench_processor.py" in out and "job_calls.json" in out
    assert "NatGateway1 NAT gateway hours" in out and "per video:" in out


@pytest.mark.parametrize("args, names", [
    (["--minutes-per-video", "0"], "--minutes-per-video"),
    (["--videos-per-month", "lots"], "--videos-per-month"),
    (["--gb-per-video", "-1"], "--gb-per-video"),
    (["--env", "nope"], "unknown environment"),
    (["--templates", "/nonexistent"], "no templates"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, args, names):
    assert main(["cost", *args]) == 2
    err = capsys.readouterr().err
    assert names in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_json_is_deterministic(capsys):
    first = run_json(capsys, "--env", "prod")
    assert run_json(capsys, "--env", "prod") == first


def test_the_cost_section_shows_each_environment_and_the_snapshot_date():
    section = cost_section()
    assert SNAPSHOT.date in section and "unverified" in section
    for env in config.ENVIRONMENTS:
        assert re.search(rf"^\| {env} \| \$[\d,]+\.\d\d \| \$\d+\.\d{{4}} \|", section, re.M), env


def test_the_docs_cost_block_is_the_generated_section():
    """Once the docs hold the block between <!-- cost:begin --> and <!-- cost:end -->, it stays generated."""
    docs = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    placed = [(p, t) for p in docs if p.exists() and "<!-- cost:begin -->" in (t := p.read_text(encoding="utf-8"))]
    if not placed:
        pytest.skip("the cost block is not placed in README.md or docs/ yet")
    for path, text in placed:
        block = text.split("<!-- cost:begin -->\n", 1)[1].split("<!-- cost:end -->", 1)[0]
        assert block == cost_section(), f"{path}'s cost block is stale: paste generator.cost.render.cost_section()"


# ---------------------------------------------------------------- refreshing the snapshot

def test_refresh_reads_prices_from_a_bulk_offer_file_and_keeps_what_it_does_not_find(tmp_path, capsys):
    snapshot = tmp_path / "prices.json"
    snapshot.write_text(prices.SNAPSHOT.read_text(encoding="utf-8"), encoding="utf-8")
    assert main(["cost", "--refresh-prices", "--from", str(FIXTURES / "offers"), "--prices", str(snapshot)]) == 0
    assert "refreshed 2 price(s)" in capsys.readouterr().out
    after = prices.load(snapshot)
    nat = after.price(REGION, "nat_gateway_hour")
    assert (nat.usd, nat.status.startswith("read, "), "SKU NATHOURSSKU0001" in nat.status) == (0.07, True, True)
    assert after.price(REGION, "nat_gateway_gb").usd == 0.065, "the free first tier is skipped"
    kept = after.price(REGION, "kms_key_month")
    assert kept == SNAPSHOT.price(REGION, "kms_key_month"), "a price not in the offer files stays as it was"


def test_refresh_offline_is_one_clear_line_and_leaves_the_snapshot(tmp_path, capsys):
    snapshot = tmp_path / "prices.json"
    snapshot.write_text(prices.SNAPSHOT.read_text(encoding="utf-8"), encoding="utf-8")
    before = snapshot.read_bytes()
    assert main(["cost", "--refresh-prices", "--from", "http://127.0.0.1:9/offers", "--prices", str(snapshot)]) == 2
    err = capsys.readouterr().err
    assert "cannot read the Price List offer file" in err and "committed snapshot still serves" in err
    assert len(err.strip().splitlines()) == 1 and snapshot.read_bytes() == before


# ---------------------------------------------------------------- in the review

def changed_sides(templates: dict) -> tuple[dict, dict]:
    """Old: the generated templates. New: prod's cache node type one size up, staging with a NAT per zone."""
    new = copy.deepcopy(templates)
    prod = config.override(config.get("prod"), cache_node_type="cache.m7g.xlarge")
    staging = config.override(config.get("staging"), nat_per_az=True)
    for cfg in (prod, staging):
        new[cfg.name] = {name.removesuffix(".json"): json.loads(text)
                         for name, text in render_environment(cfg).items()}
    return flat(templates), flat(new)


def test_a_real_changes_cost_appears_in_the_review_with_the_right_sign_and_size(templates):
    old, new = changed_sides(templates)
    report = diff_templates(old, new, "base", "new")
    report.cost = review.cost_changes(old, new)
    by_env = {c.env: c for c in report.cost}
    nodes = config.get("prod").cache_node_count
    cache_up = nodes * 730 * (price("elasticache_node_hour:cache.m7g.xlarge")
                              - price("elasticache_node_hour:cache.m7g.large"))
    second_nat = 730 * (price("nat_gateway_hour") + price("public_ipv4_hour"))
    assert by_env["prod"].fixed_usd == pytest.approx(cache_up, rel=0.01) and cache_up > 0
    assert by_env["staging"].fixed_usd == pytest.approx(second_nat, rel=0.01)
    assert by_env["dev"].fixed_usd == 0 and by_env["dev"].movers == ()
    assert [m.resource for m in by_env["prod"].movers] == ["cache/CacheReplicationGroup"]
    assert {m.resource for m in by_env["staging"].movers} == {"network/NatGateway2", "network/NatEip2"}

    markdown = render(report, "markdown")
    assert f"- `prod` cost: +${cache_up:,.2f}/month fixed, +$0.0000 per video (`cache/CacheReplicationGroup` " \
           f"+${cache_up:,.2f}/month)" in markdown
    assert f"- `staging` cost: +${second_nat:,.2f}/month fixed" in markdown
    assert "- `dev` cost: +$0.00/month fixed, +$0.0000 per video" in markdown
    body = json.loads(render(report, "json"))
    prod_json = next(c for c in body["cost"] if c["env"] == "prod")
    assert prod_json["fixed_monthly_usd_change"] == pytest.approx(cache_up, rel=0.01)
    assert prod_json["resources"][0]["resource"] == "cache/CacheReplicationGroup"
    assert f"prod: cost: +${cache_up:,.2f}/month fixed" in render(report, "text")

    back = review.cost_changes(new, old)  # the change undone: the same size, the other sign
    assert {c.env: round(c.fixed_usd, 6) for c in back} == {c.env: round(-c.fixed_usd, 6) for c in report.cost}
    assert "-$" in review.line(next(c for c in back if c.env == "prod"))


def test_fail_on_cost_gates_on_a_fixed_monthly_rise_above_the_threshold(templates, monkeypatch, capsys):
    old, new = changed_sides(templates)
    monkeypatch.setattr(diff_cli, "load_sides", lambda args, ids=None: (old, new, "base"))
    assert main(["diff", "--fail-on", "cost>100", "--format", "markdown"]) == 3
    captured = capsys.readouterr()
    assert "fixed monthly cost rises by more than $100.00: prod +$" in captured.err and "staging" not in captured.err
    assert "`prod` cost: +$" in captured.out
    assert main(["diff", "--fail-on", "cost>1000"]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as refused:  # argparse words the error and exits 2
        main(["diff", "--fail-on", "cost>cheap"])
    assert refused.value.code == 2 and "cost>USD such as cost>50" in capsys.readouterr().err
