"""Least privilege for data and secrets (issue #13), as rules over every generated template of every environment.

Like tests/test_security_rules.py, each rule reads the templates generically (by resource type and property,
following Parameters through the parent to the tier that produces them) and returns the problems it finds; the
`test_rule_*` tests feed it the shape the templates had before (master credentials in the container, a
generated master secret that never rotates, task-token grants, a container running as root) to prove it
catches it. `test_rules_fail_on_the_templates_before_issue_13` runs them over the templates of the commit
before this change, read from git: CI checks out the full history for them (a clone without it skips them,
and under CI a skip fails).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from test_security_rules import UNSCOPABLE_ACTIONS, each_statement, matches

from conftest import as_list, each_resource, resources_of_type

REPO = Path(__file__).resolve().parent.parent
BEFORE = "d677270"  # main before issue #13
SUB_VARIABLE = re.compile(r"\$\{([^}!]+)\}")
DATABASES = ("AWS::RDS::DBInstance", "AWS::RDS::DBCluster")


# --------------------------------------------------------------------------------------------------
# Following values to (tier, logical id, attribute)


def trace(templates: dict, env: str, tier: str, value) -> set[tuple[str, str, str]]:
    """Every (tier, logical id, attribute) a value is built from ("" for a Ref), through the parent's wiring."""
    found: set[tuple[str, str, str]] = set()

    def named(name: str, attribute: str, in_tier: str) -> None:
        body = templates[env][in_tier]
        if name.startswith("AWS::"):
            return
        if name in body.get("Resources", {}):
            found.add((in_tier, name, attribute))
        elif name in body.get("Parameters", {}) and in_tier != "main":
            stacks = {r["Properties"]["TemplateURL"]: r for r in templates[env]["main"]["Resources"].values()
                      if r["Type"] == "AWS::CloudFormation::Stack"}
            wiring = stacks[f"{in_tier}.json"]["Properties"]["Parameters"].get(name)
            if isinstance(wiring, dict) and "Fn::GetAtt" in wiring:
                stack, output = wiring["Fn::GetAtt"]
                producer = templates[env]["main"]["Resources"][stack]["Properties"]["TemplateURL"].removesuffix(".json")
                walk(templates[env][producer]["Outputs"][output.removeprefix("Outputs.")]["Value"], producer)

    def walk(v, in_tier: str) -> None:
        if isinstance(v, list):
            for item in v:
                walk(item, in_tier)
        elif isinstance(v, dict):
            if "Ref" in v:
                named(v["Ref"], "", in_tier)
            elif "Fn::GetAtt" in v:
                target = v["Fn::GetAtt"]
                name, attribute = (target[0], target[1]) if isinstance(target, list) else target.split(".", 1)
                named(name, attribute, in_tier)
            elif "Fn::Sub" in v:
                text, *variables = as_list(v["Fn::Sub"])
                local = variables[0] if variables else {}
                for variable in SUB_VARIABLE.findall(text):
                    name, _, attribute = variable.partition(".")
                    if name in local:
                        walk(local[name], in_tier)
                    else:
                        named(name, attribute, in_tier)
                walk(list(local.values()), in_tier)
            else:
                walk(list(v.values()), in_tier)
        elif isinstance(v, str) and v.startswith("{{resolve:secretsmanager:"):
            pass

    walk(value, tier)
    return found


def master_secrets(templates: dict, env: str) -> set[tuple[str, str, str]]:
    """What holds a database master's credentials: RDS-managed secrets, and secrets a master password reads."""
    found = set()
    for _label, e, tier, logical_id, r in each_resource(templates, *DATABASES):
        if e != env:
            continue
        found.add((tier, logical_id, "MasterUserSecret.SecretArn"))
        for prop in ("MasterUserPassword", "MasterUsername"):
            found |= {(t, i, "") for t, i, _ in trace(templates, env, tier, r["Properties"].get(prop))
                      if templates[env][t]["Resources"][i]["Type"] == "AWS::SecretsManager::Secret"}
    return found


def master_usernames(templates: dict) -> set[str]:
    return {r["Properties"]["MasterUsername"] for *_, r in each_resource(templates, *DATABASES)
            if isinstance(r["Properties"].get("MasterUsername"), str)}


def containers(templates: dict):
    """(label, env, tier, container definition) of every container of every task definition."""
    for label, env, tier, _id, r in each_resource(templates, "AWS::ECS::TaskDefinition"):
        for c in r["Properties"].get("ContainerDefinitions", []):
            yield f"{label} {c.get('Name')}", env, tier, r, c


def bootstrap_roles(templates: dict) -> set[tuple[str, str, str]]:
    """Roles of functions that CloudFormation runs as custom resources (the database bootstrap)."""
    roles = set()
    for _label, env, tier, _id, r in each_resource(templates):
        if r["Type"].startswith("Custom::") or r["Type"] == "AWS::CloudFormation::CustomResource":
            for t, function, _ in trace(templates, env, tier, r["Properties"].get("ServiceToken")):
                fn = templates[env][t]["Resources"][function]
                roles |= {(env, rt, ri) for rt, ri, _ in trace(templates, env, t, fn["Properties"].get("Role"))}
    return roles


# --------------------------------------------------------------------------------------------------
# The rules


def problems_master_in_container(templates: dict) -> list[str]:
    """Item 1: no container receives a master secret (as an ECS secret or otherwise) or the master's name."""
    problems = []
    masters = {env: master_secrets(templates, env) for env in templates}
    names = master_usernames(templates)
    for label, env, tier, _task, c in containers(templates):
        for entry in [*c.get("Secrets", []), *c.get("Environment", [])]:
            value = entry.get("ValueFrom", entry.get("Value"))
            if trace(templates, env, tier, value) & masters[env]:
                problems.append(f"{label}: {entry['Name']} comes from the database master's secret")
            if isinstance(value, str) and value in names and "USER" in entry["Name"]:
                problems.append(f"{label}: {entry['Name']} is the database master {value!r}")
    return problems


def problems_processor_database_login(templates: dict) -> list[str]:
    """Item 1: a container that talks to a database signs in with IAM as a named non-master user: its task role
    grants rds-db:connect on exactly that user (`dbuser:<resource id>/<user>`, no wildcard)."""
    problems = []
    names = master_usernames(templates)
    for label, env, tier, task, c in containers(templates):
        environment = {e["Name"]: e["Value"] for e in c.get("Environment", [])}
        if "DATABASE_HOST" not in environment:
            continue
        if environment.get("DATABASE_AUTH") != "iam" or "DATABASE_USERNAME" not in environment:
            problems.append(f"{label}: no DATABASE_AUTH=iam with a DATABASE_USERNAME")
            continue
        user = trace(templates, env, tier, environment["DATABASE_USERNAME"])
        roles = trace(templates, env, tier, task["Properties"].get("TaskRoleArn"))
        connects = []
        for role_tier, role_id, _ in roles:
            role = templates[env][role_tier]["Resources"][role_id]
            for policy in role["Properties"].get("Policies", []):
                for s in as_list(policy["PolicyDocument"]["Statement"]):
                    if s.get("Effect") == "Allow" and matches(as_list(s.get("Action", [])), "rds-db:connect"):
                        connects += [(role_tier, r) for r in as_list(s.get("Resource", []))]
        if not connects:
            problems.append(f"{label}: its task role has no rds-db:connect")
        for role_tier, resource in connects:
            text = as_list(resource.get("Fn::Sub") if isinstance(resource, dict) else resource)[0]
            user_part = text.rsplit("/", 1)[-1]
            if "*" in text or ":dbuser:" not in text or user_part in names:
                problems.append(f"{label}: rds-db:connect on {text!r}: name one database user, not the master")
            elif user and not user <= trace(templates, env, role_tier, resource):
                problems.append(f"{label}: rds-db:connect names another user than DATABASE_USERNAME")
    return problems


def problems_master_rotation(templates: dict) -> list[str]:
    """Item 2: every database master is managed by RDS (ManageMasterUserPassword, a customer key) or its secret
    has a RotationSchedule; never a password of our own that never changes."""
    problems = []
    rotated = {(env, t, i)
               for _l, env, tier, _id, r in each_resource(templates, "AWS::SecretsManager::RotationSchedule")
               for t, i, _ in trace(templates, env, tier, r["Properties"].get("SecretId"))}
    for label, env, tier, _id, r in each_resource(templates, *DATABASES):
        p = r["Properties"]
        if "DBClusterIdentifier" in p:
            continue
        if p.get("ManageMasterUserPassword") is True:
            if not p.get("MasterUserSecret", {}).get("KmsKeyId"):
                problems.append(f"{label}: the managed master secret has no customer KMS key")
            continue
        secrets = {(env, t, i) for t, i, _ in trace(templates, env, tier, p.get("MasterUserPassword"))}
        if not secrets or not secrets <= rotated:
            problems.append(f"{label}: the master password neither managed by RDS nor rotated")
    return problems


def problems_master_readers(templates: dict) -> list[str]:
    """Item 2: only the database bootstrap (the function a custom resource runs) may read a master secret."""
    problems = []
    allowed = bootstrap_roles(templates)
    masters = {env: master_secrets(templates, env) for env in templates}
    for label, env, tier, logical_id, r in each_resource(templates, "AWS::IAM::Role"):
        for policy in r["Properties"].get("Policies", []):
            for s in as_list(policy["PolicyDocument"]["Statement"]):
                if s.get("Effect") != "Allow" or not matches(as_list(s.get("Action", [])),
                                                             "secretsmanager:GetSecretValue"):
                    continue
                resources = as_list(s.get("Resource", []))
                reads = "*" in resources or any(trace(templates, env, tier, x) & masters[env] for x in resources)
                if reads and (env, tier, logical_id) not in allowed:
                    problems.append(f"{label}: may read the database master's secret")
    return problems


TASK_TOKEN_ACTIONS = ("states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat")


def problems_task_token_grants(templates: dict) -> list[str]:
    """Item 5: no task-token callbacks for ECS tasks (the workflow hands the container no token)."""
    problems = []
    for label, _env, _tier, _id, r in each_resource(templates, "AWS::IAM::Role"):
        trust = json.dumps(r["Properties"]["AssumeRolePolicyDocument"])
        if "ecs-tasks.amazonaws.com" not in trust:
            continue
        for policy in r["Properties"].get("Policies", []):
            for s in as_list(policy["PolicyDocument"]["Statement"]):
                for action in TASK_TOKEN_ACTIONS:
                    if s.get("Effect") == "Allow" and matches(as_list(s.get("Action", [])), action):
                        problems.append(f"{label}: allows {action}")
    return problems


def problems_container_user(templates: dict) -> list[str]:
    """Item 5: a container mounting a file system through an access point runs as the access point's user."""
    problems = []
    for label, env, tier, task, c in containers(templates):
        volumes = {v["Name"]: v for v in task["Properties"].get("Volumes", [])}
        for mount in c.get("MountPoints", []):
            efs = volumes.get(mount["SourceVolume"], {}).get("EFSVolumeConfiguration")
            if not efs:
                continue
            ref = efs.get("AuthorizationConfig", {}).get("AccessPointId")
            for t, i, _ in trace(templates, env, tier, ref):
                posix = templates[env][t]["Resources"][i]["Properties"].get("PosixUser", {})
                wanted = f"{posix.get('Uid')}:{posix.get('Gid')}"
                if c.get("User") != wanted:
                    problems.append(f"{label}: runs as {c.get('User', 'the image user (root)')!r}, not {wanted}")
    return problems


def problems_connection_logging(templates: dict) -> list[str]:
    """Item 5: prod's database logs every connection and disconnection."""
    problems = []
    for label, env, tier, _id, r in each_resource(templates, "AWS::RDS::DBInstance"):
        if env != "prod":
            continue
        [group] = trace(templates, env, tier, r["Properties"].get("DBParameterGroupName")) or [(None, None, None)]
        parameters = templates[env][group[0]]["Resources"][group[1]]["Properties"]["Parameters"] if group[0] else {}
        for name in ("log_connections", "log_disconnections"):
            if str(parameters.get(name, "")).lower() not in ("1", "on", "true"):
                problems.append(f"{label}: {name} is not on")
    return problems


DIGEST = "123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/processor@sha256:" + "a" * 64
TAGGED = "123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/processor:1.2.3"


def problems_image_pinning(templates: dict) -> list[str]:
    """Item 5: prod's parent accepts the processor image only by digest (a tag can be moved), with no default."""
    problems = []
    for env, tiers in templates.items():
        if env != "prod":
            continue
        for name, parameter in tiers["main"].get("Parameters", {}).items():
            if name != "ProcessorImage":
                continue
            pattern = re.compile(parameter.get("AllowedPattern", ".*"))
            if pattern.search(TAGGED) or not pattern.search(DIGEST):
                problems.append(f"{env}/main.json {name}: accepts a tag, or refuses a digest")
            if "@sha256:" not in parameter.get("Default", "@sha256:"):
                problems.append(f"{env}/main.json {name}: defaults to a tag")
    return problems


def problems_image_pull_scope(templates: dict) -> list[str]:
    """Item 5: a role may pull images (ECR layer and image reads) from one named repository, not `repository/*`."""
    pulls = ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability")
    return [f"{where}: pulls from {resource}" for where, kind, s in each_statement(templates)
            if kind == "identity" and s.get("Effect") == "Allow"
            and any(matches(as_list(s.get("Action", [])), a) for a in pulls)
            for resource in as_list(s.get("Resource", []))
            if "*" in json.dumps(resource)]


INTERFACE_SERVICES = ("secretsmanager", "logs", "ecr.api", "ecr.dkr", "sts", "states")


def problems_endpoints(templates: dict) -> list[str]:
    """Item 5: every VPC endpoint has a policy; interface endpoints admit this account's principals only
    (`aws:PrincipalAccount`); prod has an interface endpoint for each of INTERFACE_SERVICES."""
    problems = []
    services: dict[str, set[str]] = {}
    for label, env, _tier, _id, r in each_resource(templates, "AWS::EC2::VPCEndpoint"):
        p = r["Properties"]
        name = as_list(p.get("ServiceName", {}).get("Fn::Sub", p.get("ServiceName")))[0]
        services.setdefault(env, set()).add(str(name).rsplit("}.", 1)[-1])
        if not p.get("PolicyDocument"):
            problems.append(f"{label}: no endpoint policy (the default admits anyone)")
        elif p.get("VpcEndpointType") == "Interface" and not all(
                "aws:PrincipalAccount" in json.dumps(s.get("Condition", {}))
                for s in as_list(p["PolicyDocument"]["Statement"]) if s.get("Effect") == "Allow"):
            problems.append(f"{label}: an Allow not limited to this account's principals")
    missing = sorted(set(INTERFACE_SERVICES) - services.get("prod", set()))
    if "prod" in templates and missing:
        problems.append(f"prod: no interface endpoint for {', '.join(missing)}")
    return problems


def problems_cache_access(templates: dict) -> list[str]:
    """Item 4: no shared, never-rotated token: a Redis group admits the users of its user group (or its AUTH
    token's secret rotates); its `default` user is off; every other user may not run dangerous commands."""
    problems = []
    rotated = {(env, t, i)
               for _l, env, tier, _id, r in each_resource(templates, "AWS::SecretsManager::RotationSchedule")
               for t, i, _ in trace(templates, env, tier, r["Properties"].get("SecretId"))}
    for label, env, tier, _id, r in each_resource(templates, "AWS::ElastiCache::ReplicationGroup"):
        p = r["Properties"]
        if "AuthToken" in p:
            secrets = {(env, t, i) for t, i, _ in trace(templates, env, tier, p["AuthToken"])}
            if not secrets or not secrets <= rotated:
                problems.append(f"{label}: a shared AUTH token that never rotates")
            continue
        if not p.get("UserGroupIds"):
            problems.append(f"{label}: neither a user group nor an AUTH token")
        for t, group, _ in trace(templates, env, tier, p.get("UserGroupIds")):
            members = templates[env][t]["Resources"][group]["Properties"]["UserIds"]
            for u_tier, user, _ in trace(templates, env, t, members):
                props = templates[env][u_tier]["Resources"][user]["Properties"]
                access = props.get("AccessString", "").split()
                if props.get("UserName") == "default":
                    if "off" not in access:
                        problems.append(f"{label}: its default user is on")
                elif "-@dangerous" not in access or access.index("-@dangerous") < max(
                        (i for i, a in enumerate(access) if a in ("+@all", "+@dangerous", "allcommands")), default=-1):
                    problems.append(f"{label}: user {props.get('UserName')} may run dangerous commands")
    return problems


RULES = (problems_master_in_container, problems_processor_database_login, problems_master_rotation,
         problems_master_readers, problems_task_token_grants, problems_container_user, problems_connection_logging,
         problems_image_pinning, problems_image_pull_scope, problems_endpoints, problems_cache_access)


@pytest.mark.parametrize("rule", RULES, ids=[r.__name__ for r in RULES])
def test_rule_holds_over_every_template(templates, rule):
    assert rule(templates) == []


def test_task_token_actions_are_not_in_the_unscopable_allow_list():
    assert not set(TASK_TOKEN_ACTIONS) & set(UNSCOPABLE_ACTIONS)


def test_the_bootstrap_is_found_and_reads_the_master_secret(templates):
    """The readers rule is not vacuous: the bootstrap role exists in every environment and reads the secret."""
    roles = bootstrap_roles(templates)
    assert {env for env, *_ in roles} == set(templates)
    for env, tier, role in roles:
        grants = [s for p in templates[env][tier]["Resources"][role]["Properties"]["Policies"]
                  for s in p["PolicyDocument"]["Statement"] if "secretsmanager:GetSecretValue" in as_list(s["Action"])]
        assert any(trace(templates, env, tier, s["Resource"]) & master_secrets(templates, env) for s in grants)


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


@pytest.mark.parametrize("rule", RULES, ids=[r.__name__ for r in RULES])
def test_rules_fail_on_the_templates_before_issue_13(before, rule):
    assert rule(before), f"{rule.__name__} finds nothing in the templates of {BEFORE}"


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


@pytest.mark.parametrize("rule", RULES, ids=[r.__name__ for r in RULES])
def test_rule_catches_the_old_shape(rule):
    assert rule(_old_shape()), rule.__name__


def test_rule_master_readers_admits_only_the_bootstrap_function():
    templates = _old_shape()
    resources = templates["prod"]["storage"]["Resources"]
    resources["Fn"] = {"Type": "AWS::Lambda::Function", "Properties": {"Role": {"Fn::GetAtt": ["TaskRole", "Arn"]}}}
    resources["Bootstrap"] = {"Type": "Custom::DatabaseBootstrap",
                              "Properties": {"ServiceToken": {"Fn::GetAtt": ["Fn", "Arn"]}}}
    assert problems_master_readers(templates) == []


def test_every_statement_walker_sees_the_new_roles(templates):
    """The generic IAM rules of test_security_rules cover the schema tier's function role too."""
    assert any(where.startswith("dev/schema.json BootstrapFunctionRole") for where, *_ in each_statement(templates))


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_eventbridge_may_only_dead_letter_and_only_as_the_jobs_rule(templates, env):
    """Issue 13, item 5: the service principal is scoped with aws:SourceArn to the exact rule (named for it). Since
    issue 12 nothing publishes to a topic as EventBridge: the scheduler reports timeouts and aborts as its role."""
    rule = templates[env]["jobs"]["Resources"]["ExecutionEndedRule"]
    rule_name = rule["Properties"]["Name"]
    events_statements = [s for t in (templates[env]["notification"],)
                         for p in [*resources_of_type(t, "AWS::SNS::TopicPolicy").values(),
                                   *resources_of_type(t, "AWS::SQS::QueuePolicy").values()]
                         for s in p["Properties"]["PolicyDocument"]["Statement"]
                         if s.get("Principal") == {"Service": ["events.amazonaws.com"]}]
    assert len(events_statements) == 1  # dead-letter to the queue
    assert events_statements[0]["Action"] in ("sqs:SendMessage", ["sqs:SendMessage"])
    for statement in events_statements:
        source_arn = statement["Condition"]["ArnEquals"]["aws:SourceArn"]
        assert source_arn["Fn::Sub"].endswith(f":rule/{rule_name}"), statement
