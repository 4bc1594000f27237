"""Least privilege for data and secrets (issue #13): the VP5xx rules of generator/rules/privilege.py.

tests/test_security_rules.py runs every rule over every template and over its good and bad fixture; here the
rules also meet the shape the templates had before issue #13 (master credentials in the container, a generated
master secret that never rotates, task-token grants, a container running as root), as one synthetic set of
templates and, when git has it, as the committed templates of the commit before that change. CI checks out the
full history for the latter (a clone without it skips them, and under CI a skip fails).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from generator.rules import privilege
from generator.rules.common import Rule, each_statement, trace

from conftest import as_list, resources_of_type

REPO = Path(__file__).resolve().parent.parent
BEFORE = "d677270"  # main before issue #13
RULES = tuple(r for r in vars(privilege).values() if isinstance(r, Rule))


def test_the_privilege_rules_are_the_vp5xx_rules():
    assert sorted(r.id for r in RULES) == [f"VP5{i:02d}" for i in range(1, 12)]


def test_the_bootstrap_is_found_and_reads_the_master_secret(templates):
    """The readers rule is not vacuous: the bootstrap role exists in every environment and reads the secret."""
    roles = privilege.bootstrap_roles(templates)
    assert {env for env, *_ in roles} == set(templates)
    for env, tier, role in roles:
        grants = [s for p in templates[env][tier]["Resources"][role]["Properties"]["Policies"]
                  for s in p["PolicyDocument"]["Statement"] if "secretsmanager:GetSecretValue" in as_list(s["Action"])]
        masters = privilege.master_secrets(templates, env)
        assert any(trace(templates, env, tier, s["Resource"]) & masters for s in grants)


# --------------------------------------------------------------------------------------------------
# The rules catch the shape the templates had before issue #13


@pytest.fixture(scope="module")
def before() -> dict:
    """Every environment's templates at BEFORE, read from git."""
    found: dict = {}
    listing = subprocess.run(["git", "ls-tree", "-r", "--name-only", BEFORE, "templates"], cwd=REPO,
                             capture_output=True, text=True, check=False)
    if listing.returncode != 0:
        pytest.skip(f"commit {BEFORE} is not in this clone (a shallow clone? `git fetch --unshallow` fetches it); "
                    "the synthetic cases below still run")
    for path in listing.stdout.split():
        _, env, name = path.split("/")
        text = subprocess.run(["git", "show", f"{BEFORE}:{path}"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout
        found.setdefault(env, {})[name.removesuffix(".json")] = json.loads(text)
    return found


@pytest.mark.parametrize("rule", RULES, ids=[r.id for r in RULES])
def test_rules_fail_on_the_templates_before_issue_13(before, rule):
    assert rule(before), f"{rule.id} finds nothing in the templates of {BEFORE}"


def test_ci_checks_out_the_history_the_cases_before_issue_13_read():
    """actions/checkout fetches one commit unless asked for more; these cases would then skip (fail, under CI)."""
    import yaml

    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8"))
    [checkout] = [step for step in workflow["jobs"]["ci"]["steps"]
                  if step.get("uses", "").startswith("actions/checkout@")]
    assert checkout["with"]["fetch-depth"] == 0, "0 is every commit of every branch and tag"


def _old_shape() -> dict:
    """One environment (prod) in the old shape: the container reads the master secret, runs as root, may send
    task tokens; the master password is generated once and never rotates; connections are not logged."""
    storage = {"Parameters": {}, "Outputs": {"DatabaseSecretArn": {"Value": {"Ref": "DatabaseSecret"}}},
               "Resources": {
                   "DatabaseSecret": {"Type": "AWS::SecretsManager::Secret", "Properties": {}},
                   "CacheAuthSecret": {"Type": "AWS::SecretsManager::Secret", "Properties": {}},
                   "Cache": {"Type": "AWS::ElastiCache::ReplicationGroup", "Properties": {
                       "AuthToken": {"Fn::Sub": "{{resolve:secretsmanager:${CacheAuthSecret}:SecretString}}"}}},
                   "S3": {"Type": "AWS::EC2::VPCEndpoint", "Properties": {
                       "VpcEndpointType": "Gateway", "ServiceName": {"Fn::Sub": "com.amazonaws.${AWS::Region}.s3"}}},
                   "Params": {"Type": "AWS::RDS::DBParameterGroup",
                              "Properties": {"Parameters": {"rds.force_ssl": "1"}}},
                   "Database": {"Type": "AWS::RDS::DBInstance", "Properties": {
                       "MasterUsername": "videoprocessing", "DBParameterGroupName": {"Ref": "Params"},
                       "MasterUserPassword": {
                           "Fn::Sub": "{{resolve:secretsmanager:${DatabaseSecret}:SecretString:password}}"}}},
                   "AccessPoint": {"Type": "AWS::EFS::AccessPoint",
                                   "Properties": {"PosixUser": {"Uid": "1000", "Gid": "1000"}}},
                   "TaskRole": {"Type": "AWS::IAM::Role", "Properties": {
                       "AssumeRolePolicyDocument": {"Statement": [{
                           "Effect": "Allow", "Action": "sts:AssumeRole",
                           "Principal": {"Service": "ecs-tasks.amazonaws.com"}}]},
                       "Policies": [{"PolicyName": "P", "PolicyDocument": {"Statement": [
                           {"Effect": "Allow", "Action": ["states:SendTaskSuccess"], "Resource": "*"},
                           {"Effect": "Allow", "Action": ["ecr:BatchGetImage"],
                            "Resource": {"Fn::Sub": "arn:aws:ecr:r:a:repository/*"}},
                           {"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"],
                            "Resource": {"Ref": "DatabaseSecret"}}]}}]}},
                   "Task": {"Type": "AWS::ECS::TaskDefinition", "Properties": {
                       "TaskRoleArn": {"Fn::GetAtt": ["TaskRole", "Arn"]},
                       "Volumes": [{"Name": "media", "EFSVolumeConfiguration": {
                           "AuthorizationConfig": {"AccessPointId": {"Ref": "AccessPoint"}}}}],
                       "ContainerDefinitions": [{"Name": "c", "MountPoints": [{"SourceVolume": "media"}],
                                                 "Environment": [{"Name": "DATABASE_HOST", "Value": "h"}],
                                                 "Secrets": [{"Name": "DATABASE_PASSWORD", "ValueFrom": {
                                                     "Fn::Sub": "${DatabaseSecret}:password::"}}]}]}},
               }}
    main = {"Parameters": {"ProcessorImage": {
                "Type": "String", "Default": "public.ecr.aws/aws-cli/aws-cli:2.22.35",
                "AllowedPattern": r"^[^:@\s]+(:(?!latest$)[\w][\w.-]{0,127}|@sha256:[a-f0-9]{64})$"}},
            "Resources": {"StorageStack": {"Type": "AWS::CloudFormation::Stack",
                                           "Properties": {"TemplateURL": "storage.json", "Parameters": {}}}}}
    return {"prod": {"storage": storage, "main": main}}


@pytest.mark.parametrize("rule", RULES, ids=[r.id for r in RULES])
def test_rule_catches_the_old_shape(rule):
    assert rule(_old_shape()), rule.id


def test_rule_master_readers_admits_only_the_bootstrap_function():
    templates = _old_shape()
    resources = templates["prod"]["storage"]["Resources"]
    resources["Fn"] = {"Type": "AWS::Lambda::Function", "Properties": {"Role": {"Fn::GetAtt": ["TaskRole", "Arn"]}}}
    resources["Bootstrap"] = {"Type": "Custom::DatabaseBootstrap",
                              "Properties": {"ServiceToken": {"Fn::GetAtt": ["Fn", "Arn"]},
                                             "MasterSecretArn": {"Ref": "DatabaseSecret"}}}
    assert privilege.master_readers(templates) == []


def test_rule_master_readers_refuses_a_custom_resource_function_not_handed_the_secret():
    """Being a custom resource's function (the database's log groups) is no licence to read the master's secret."""
    templates = _old_shape()
    resources = templates["prod"]["storage"]["Resources"]
    resources["Fn"] = {"Type": "AWS::Lambda::Function", "Properties": {"Role": {"Fn::GetAtt": ["TaskRole", "Arn"]}}}
    resources["LogGroup"] = {"Type": "Custom::AdoptedLogGroup",
                             "Properties": {"ServiceToken": {"Fn::GetAtt": ["Fn", "Arn"]}, "LogGroupName": "/g"}}
    assert privilege.master_readers(templates) == ["prod/storage.json TaskRole: may read the database master's secret"]


def test_every_statement_walker_sees_the_new_roles(templates):
    """The generic IAM rules of test_security_rules cover the schema tier's function role too."""
    assert any(where.startswith("dev/schema.json BootstrapFunctionRole") for where, *_ in each_statement(templates))


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_eventbridge_may_only_dead_letter_and_only_as_the_jobs_rules(templates, env):
    """Issue 13, item 5: the service principal is scoped with aws:SourceArn to the exact rules (named for it): the
    ended executions' and (issue 22) the uploaded sources'. Since issue 12 nothing publishes to a topic as
    EventBridge: the scheduler reports timeouts and aborts as its role."""
    rule_names = [templates[env]["jobs"]["Resources"][title]["Properties"]["Name"]
                  for title in ("ExecutionEndedRule", "SourceArrivedRule")]
    events_statements = [s for t in (templates[env]["notification"],)
                         for p in [*resources_of_type(t, "AWS::SNS::TopicPolicy").values(),
                                   *resources_of_type(t, "AWS::SQS::QueuePolicy").values()]
                         for s in p["Properties"]["PolicyDocument"]["Statement"]
                         if s.get("Principal") == {"Service": ["events.amazonaws.com"]}]
    assert len(events_statements) == 1  # dead-letter to the queue
    assert events_statements[0]["Action"] in ("sqs:SendMessage", ["sqs:SendMessage"])
    for statement in events_statements:
        source_arns = statement["Condition"]["ArnEquals"]["aws:SourceArn"]
        assert [arn["Fn::Sub"].rsplit(":rule/", 1)[1] for arn in source_arns] == rule_names, statement
