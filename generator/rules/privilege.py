"""Data and secret privilege rules (VP5xx, issue #13): who may read a master secret, how containers sign in,
what a container runs as, which images and endpoints are admitted."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from generator.rules.common import Templates, as_list, each_resource, each_statement, matches, rule, trace

DATABASES = ("AWS::RDS::DBInstance", "AWS::RDS::DBCluster")


def master_secrets(templates: Templates, env: str) -> set[tuple[str, str, str]]:
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


def master_usernames(templates: Templates) -> set[str]:
    return {r["Properties"]["MasterUsername"] for *_, r in each_resource(templates, *DATABASES)
            if isinstance(r["Properties"].get("MasterUsername"), str)}


def containers(templates: Templates) -> Iterator[tuple[str, str, str, dict, dict]]:
    """(label, env, tier, task definition, container definition) of every container of every task definition."""
    for label, env, tier, _id, r in each_resource(templates, "AWS::ECS::TaskDefinition"):
        for c in r["Properties"].get("ContainerDefinitions", []):
            yield f"{label} {c.get('Name')}", env, tier, r, c


def bootstrap_roles(templates: Templates) -> set[tuple[str, str, str]]:
    """Roles of functions that CloudFormation runs as custom resources handed a master's secret (the database
    bootstrap); other custom resources' functions (the database's log groups) are no readers."""
    roles = set()
    for _label, env, tier, _id, r in each_resource(templates):
        if (r["Type"].startswith("Custom::") or r["Type"] == "AWS::CloudFormation::CustomResource") and \
                trace(templates, env, tier, r["Properties"]) & master_secrets(templates, env):
            for t, function, _ in trace(templates, env, tier, r["Properties"].get("ServiceToken")):
                fn = templates[env][t]["Resources"][function]
                roles |= {(env, rt, ri) for rt, ri, _ in trace(templates, env, t, fn["Properties"].get("Role"))}
    return roles


# --------------------------------------------------------------------------------------------------
# The rules


@rule("VP501", "No container receives a database master's secret or the master's user name",
      "https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/UsingWithRDS.MasterAccounts.html")
def master_in_container(templates: Templates) -> list[str]:
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


@rule("VP502", "A container that talks to a database signs in with IAM as a named non-master user, and its task role "
      "may rds-db:connect as exactly that user",
      "https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/UsingWithRDS.IAMDBAuth.IAMPolicy.html")
def processor_database_login(templates: Templates) -> list[str]:
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


@rule("VP503", "Every database master password is managed by RDS under a customer key, or its secret rotates",
      "https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/rds-secrets-manager.html")
def master_rotation(templates: Templates) -> list[str]:
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


@rule("VP504", "Only the database bootstrap (the function a custom resource runs) may read a master secret",
      "https://docs.aws.amazon.com/secretsmanager/latest/userguide/auth-and-access.html")
def master_readers(templates: Templates) -> list[str]:
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


@rule("VP505", "No ECS task role may send Step Functions task-token callbacks",
      "https://docs.aws.amazon.com/step-functions/latest/dg/connect-to-resource.html#connect-wait-token")
def task_token_grants(templates: Templates) -> list[str]:
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


@rule("VP506", "A container mounting a file system through an access point runs as the access point's user",
      "https://docs.aws.amazon.com/efs/latest/ug/efs-access-points.html")
def container_user(templates: Templates) -> list[str]:
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


@rule("VP507", "Prod's database logs every connection and disconnection",
      "https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_LogAccess.Concepts.PostgreSQL.html")
def connection_logging(templates: Templates) -> list[str]:
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


@rule("VP508", "Prod's parent accepts the processor image only by digest, with no default",
      "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task_definition_parameters.html"
      "#container_definition_image")
def image_pinning(templates: Templates) -> list[str]:
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


@rule("VP509", "A role pulls images from one named ECR repository, never repository/*",
      "https://docs.aws.amazon.com/AmazonECR/latest/userguide/security_iam_id-based-policy-examples.html")
def image_pull_scope(templates: Templates) -> list[str]:
    """Item 5: a role may pull images (ECR layer and image reads) from one named repository, not `repository/*`."""
    pulls = ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability")
    return [f"{where}: pulls from {resource}" for where, kind, s in each_statement(templates)
            if kind == "identity" and s.get("Effect") == "Allow"
            and any(matches(as_list(s.get("Action", [])), a) for a in pulls)
            for resource in as_list(s.get("Resource", []))
            if "*" in json.dumps(resource)]


INTERFACE_SERVICES = ("secretsmanager", "logs", "ecr.api", "ecr.dkr", "sns", "sts", "states")


@rule("VP510", "Every VPC endpoint has a policy; interface endpoints admit only this account's principals; prod has "
      "an interface endpoint for each service its tasks call",
      "https://docs.aws.amazon.com/vpc/latest/privatelink/vpc-endpoints-access.html")
def endpoints(templates: Templates) -> list[str]:
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


@rule("VP511", "A Redis group admits only its user group's users (or rotates its AUTH token); the default user is "
      "off; no other user may run dangerous commands",
      "https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/Clusters.RBAC.html")
def cache_access(templates: Templates) -> list[str]:
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


