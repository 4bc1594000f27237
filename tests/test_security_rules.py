"""The rules package (generator/rules): each rule holds over every generated template of every environment, finds
exactly what its bad fixture holds and nothing in its good one, and runs from the command line.

Fixtures live in tests/fixtures/rules/<rule id>/{good,bad}.json, in cfn-lint's manner: `templates` is every
environment's templates (env -> template name -> template; the parent "main" wires the children), `findings`
the number of problems the rule must report in the bad one, `about` what each shows.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from generator import __main__ as cli
from generator import config, rules
from generator.rules import data_safety, network
from generator.rules.common import each_statement

from conftest import each_resource

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "rules"
RULE_IDS = [r.id for r in rules.RULES]


def fixture(rule_id: str, kind: str) -> dict:
    return json.loads((FIXTURES / rule_id / f"{kind}.json").read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------------------------
# Every rule: declared, proved on its fixtures, holding over the templates


def test_every_rule_has_an_id_a_one_line_description_and_an_aws_source():
    assert len(set(RULE_IDS)) == len(RULE_IDS) > 0, "rule ids are unique"
    for r in rules.RULES:
        assert re.fullmatch(r"VP[1-9]\d\d", r.id), r.id
        assert r.description.strip() and "\n" not in r.description and len(r.description) <= 200, r.id
        assert r.source.startswith("https://docs.aws.amazon.com/"), r.id


def test_every_rule_has_one_good_and_one_bad_fixture_and_no_fixture_lacks_a_rule():
    assert sorted(p.name for p in FIXTURES.iterdir()) == sorted(RULE_IDS)
    for rule_id in RULE_IDS:
        assert sorted(p.name for p in (FIXTURES / rule_id).iterdir()) == ["bad.json", "good.json"], rule_id


@pytest.mark.parametrize("rule", rules.RULES, ids=RULE_IDS)
def test_rule_finds_exactly_the_problems_of_its_bad_fixture(rule):
    bad = fixture(rule.id, "bad")
    found = rule(bad["templates"])
    assert len(found) == bad["findings"] > 0, f"{rule.id} ({bad['about']}):\n" + "\n".join(found)
    for finding in found:  # each names where: <env>/<template>.json <resource>: or <env>: for the whole environment
        assert re.match(r"^[a-z]+(/[\w-]+\.json [\w]+.*)?: ", finding), finding


@pytest.mark.parametrize("rule", rules.RULES, ids=RULE_IDS)
def test_rule_finds_nothing_in_its_good_fixture(rule):
    good = fixture(rule.id, "good")
    assert rule(good["templates"]) == [], f"{rule.id} ({good['about']})"


@pytest.mark.parametrize("rule", rules.RULES, ids=RULE_IDS)
def test_rule_holds_over_every_template_of_every_environment(templates, rule):
    assert rule(templates) == []


def test_the_rule_table_has_one_row_per_rule_with_its_source():
    table = rules.markdown_table()
    rows = [line for line in table.splitlines() if line.startswith("| VP")]
    assert [row.split(" | ")[0].removeprefix("| ") for row in rows] == RULE_IDS
    assert all(f"<{r.source}>" in row for r, row in zip(rules.RULES, rows, strict=True))


# --------------------------------------------------------------------------------------------------
# The commands that run them


def test_rules_command_passes_over_the_committed_templates(capsys):
    assert cli.main(["rules"]) == 0
    assert f"rules hold: {len(rules.RULES)} rules" in capsys.readouterr().out


def test_rules_command_names_each_finding_by_rule_and_resource(tmp_path, capsys):
    bad = fixture("VP301", "bad")["templates"]
    for env, stacks in bad.items():
        (tmp_path / env).mkdir()
        for name, body in stacks.items():
            (tmp_path / env / f"{name}.json").write_text(json.dumps(body), encoding="utf-8")
    assert cli.main(["rules", "--templates", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "VP301 prod/tier.json K: key rotation is not enabled" in err and "rule finding(s) in" in err


@pytest.mark.parametrize("files, message", [
    ({}, "no <env>/*.json templates"),
    ({"dev/main.json": "{"}, "is not JSON"),
    ({"dev/main.json": '{"Resources": {"R": {"Properties": {}}}}'}, "Resources each have a Type"),
    ({"dev/main.json": "[]"}, "is not a CloudFormation template"),
])
def test_rules_command_refuses_what_is_not_templates_in_one_line(tmp_path, capsys, files, message):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    assert cli.main(["rules", "--templates", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_rules_command_refuses_a_missing_directory_in_one_line(tmp_path, capsys):
    assert cli.main(["rules", "--templates", str(tmp_path / "absent")]) == 2
    assert "no templates directory" in capsys.readouterr().err


def test_rules_command_lists_the_table(capsys):
    assert cli.main(["rules", "--list"]) == 0
    assert capsys.readouterr().out == rules.markdown_table()


def test_check_runs_the_rules_over_what_it_generates(tmp_path, capsys):
    """A what-if prod that keeps no data is fresh in its own directory, but --check fails on the rules."""
    overrides = tmp_path / "overrides.json"
    overrides.write_text(json.dumps({"prod": {"retain_data": False}}), encoding="utf-8")
    out = tmp_path / "out"
    assert cli.main(["--config", str(overrides), "--env", "prod", "--out", str(out)]) == 0
    capsys.readouterr()
    assert cli.main(["--config", str(overrides), "--env", "prod", "--out", str(out), "--check"]) == 1
    err = capsys.readouterr().err
    assert "VP401 prod/jobs.json JobsTable:" in err and "VP403 prod/storage.json Database:" in err


# --------------------------------------------------------------------------------------------------
# What the fixtures do not show


def test_policy_documents_are_found_wherever_they_are(templates):
    """The walker sees every trust policy, key policy and resource policy (else the IAM rules see nothing)."""
    kinds: dict[str, list[str]] = {}
    for where, kind, _ in each_statement(templates):
        kinds.setdefault(kind, []).append(where)
    roles = list(each_resource(templates, "AWS::IAM::Role"))
    keys = list(each_resource(templates, "AWS::KMS::Key"))
    assert roles and keys
    for label, *_ in roles:
        assert any(w.startswith(f"{label} AssumeRolePolicyDocument") for w in kinds["trust"]), label
    for label, *_ in keys:
        assert any(w.startswith(f"{label} KeyPolicy") for w in kinds["key"]), label
    for label, *_ in each_resource(templates, "AWS::SNS::TopicPolicy", "AWS::SQS::QueuePolicy"):
        assert any(w.startswith(f"{label} PolicyDocument") for w in kinds["resource"]), label


def test_every_environment_has_data_store_groups_for_the_reachability_rule(templates):
    assert all(network.data_store_groups(templates).get(env) for env in templates), "no data-store group found"


def test_rule_data_store_reachability_catches_a_group_that_does_not_use_the_store(templates):
    changed = copy.deepcopy(templates)
    database_group = changed["dev"]["network"]["Resources"]["DatabaseSecurityGroup"]["Properties"]
    database_group["SecurityGroupIngress"].append({
        "SourceSecurityGroupId": {"Fn::GetAtt": ["ApiFunctionSecurityGroup", "GroupId"]},
        "IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432})
    assert network.data_store_reachability(changed) == [
        "dev/network.json DatabaseSecurityGroup: a data store admits ('network', 'ApiFunctionSecurityGroup'), the "
        "group of no tier that uses it"]


def test_rule_data_store_reachability_catches_the_cache_admitting_the_scheduler(templates):
    """The scheduler has its own group so that the rule can tell it from the API function: the jobs tier is given
    nothing of the cache, so a cache that admits the scheduler's group is a finding (while the two shared a group,
    the API's use of the cache let the scheduler through too)."""
    changed = copy.deepcopy(templates)
    changed["dev"]["network"]["Resources"]["CacheSecurityGroup"]["Properties"]["SecurityGroupIngress"].append({
        "SourceSecurityGroupId": {"Fn::GetAtt": ["SchedulerFunctionSecurityGroup", "GroupId"]},
        "IpProtocol": "tcp", "FromPort": 6379, "ToPort": 6379})
    assert network.data_store_reachability(changed) == [
        "dev/network.json CacheSecurityGroup: a data store admits ('network', 'SchedulerFunctionSecurityGroup'), "
        "the group of no tier that uses it"]


def test_prod_keeps_data():
    assert sorted(env for env, cfg in config.ENVIRONMENTS.items() if cfg.retain_data) == data_safety.KEEPS_DATA
    assert "prod" in data_safety.KEEPS_DATA

