"""The project's own security and reliability rules, over every generated template of every environment.

Each rule reads the templates generically (by resource type and property, following Parameters through
the parent to the tier that produces them), so a tier added later is covered without touching this
file. Each rule is a function returning the problems it finds, named by `<env>/<template> <resource>`;
the `test_rule_*_catches_*` tests feed it a small bad template to prove it is not vacuous.
"""

from __future__ import annotations

import copy
import fnmatch
import ipaddress
import json
import re

import pytest
from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

from generator import config, contracts
from generator.aws_facts import RETAINING_POLICY, STATEFUL_TYPES

from conftest import as_list, each_resource, resolve

# --------------------------------------------------------------------------------------------------
# Reading templates generically


def policy_documents(value, path: str = ""):
    """(property path, document) for every IAM policy document anywhere under a resource's Properties."""
    if isinstance(value, dict):
        if "Statement" in value:
            yield path, value
            return
        for key, item in value.items():
            yield from policy_documents(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from policy_documents(item, f"{path}[{i}]")


IDENTITY_POLICY_TYPES = ("AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::User",
                         "AWS::IAM::Group")


def each_statement(templates: dict):
    """(label, kind, statement): kind is "key" (KMS key policy), "trust", "identity" or "resource"."""
    for label, _env, _tier, _id, resource in each_resource(templates):
        for path, document in policy_documents(resource.get("Properties", {})):
            if resource["Type"] == "AWS::KMS::Key":
                kind = "key"
            elif resource["Type"] == "AWS::EC2::VPCEndpoint":
                kind = "endpoint"  # limits what passes the endpoint; grants nothing by itself
            elif path.startswith("AssumeRolePolicyDocument"):
                kind = "trust"
            elif resource["Type"] in IDENTITY_POLICY_TYPES:
                kind = "identity"
            else:
                kind = "resource"
            for i, statement in enumerate(as_list(document["Statement"])):
                yield f"{label} {path} statement {statement.get('Sid', i)}", kind, statement


def matches(actions: list[str], wanted: str) -> bool:
    """Whether any (possibly wildcarded) action grants `wanted` (IAM action names are case-insensitive)."""
    return any(fnmatch.fnmatchcase(wanted.lower(), a.lower()) for a in actions if isinstance(a, str))


def is_tls_deny(statement: dict, action: str) -> bool:
    """A Deny of `action` (or a wildcard covering it) to everyone whenever the request is not over TLS."""
    return (statement.get("Effect") == "Deny" and statement.get("Principal") in ("*", {"AWS": "*"}, {"AWS": ["*"]})
            and matches(as_list(statement.get("Action", [])), action)
            and statement.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}})


# --------------------------------------------------------------------------------------------------
# IAM

# Actions that AWS does not allow to be scoped to a resource (Service Authorization Reference: no
# resource type), the only ones that may appear with Resource "*". Each entry says why.
UNSCOPABLE_ACTIONS = {
    "ec2:DescribeNetworkInterfaces": "Describe actions have no resource type (Lambda: works only on *)",
    "ec2:DescribeSubnets": "Describe actions have no resource type",
    "ecr:GetAuthorizationToken": "returns a registry login token; the action has no resource type",
    "logs:CreateLogDelivery": "vended log delivery (Step Functions, API Gateway) has no resource type",
    "logs:DeleteLogDelivery": "vended log delivery has no resource type",
    "logs:GetLogDelivery": "vended log delivery has no resource type",
    "logs:ListLogDeliveries": "vended log delivery has no resource type",
    "logs:UpdateLogDelivery": "vended log delivery has no resource type",
    "logs:DescribeLogGroups": "a list action over the account; Step Functions log delivery requires it on *",
    "logs:DescribeResourcePolicies": "CloudWatch Logs resource policies are account-wide; no resource type",
    "logs:PutResourcePolicy": "CloudWatch Logs resource policies are account-wide; no resource type",
    "xray:GetSamplingRules": "X-Ray sampling and ingestion actions have no resource type",
    "xray:GetSamplingTargets": "X-Ray sampling and ingestion actions have no resource type",
    "xray:PutTelemetryRecords": "X-Ray sampling and ingestion actions have no resource type",
    "xray:PutTraceSegments": "X-Ray sampling and ingestion actions have no resource type",
}
# The one other explained case: a KMS key policy's Resource "*" means the key the policy is attached to.
KEY_POLICY_RESOURCE = "*"
SERVICE_WIDE = re.compile(r"^[a-z0-9-]+:\*$", re.IGNORECASE)


def problems_wildcard_actions(templates: dict) -> list[str]:
    """No Allow grants `*` or `service:*`, nor uses NotAction/NotResource/NotPrincipal, nor admits anyone."""
    problems = []
    for where, _kind, s in each_statement(templates):
        if s.get("Effect") != "Allow":
            continue
        for action in as_list(s.get("Action", [])):
            if action == "*" or SERVICE_WIDE.match(str(action)):
                problems.append(f"{where}: allows {action!r}")
        for negation in ("NotAction", "NotResource", "NotPrincipal"):
            if negation in s:
                problems.append(f"{where}: Allow with {negation}")
        if s.get("Principal") in ("*", {"AWS": "*"}, {"AWS": ["*"]}) and not (
                _kind == "endpoint" and (names_aws_owned_objects(s) or narrowed_to_principals(s))):
            problems.append(f"{where}: allows any principal")
    return problems


# A gateway endpoint's policy must name its principals by condition, "*" in Principal (an account root there means
# the root user alone): https://docs.aws.amazon.com/vpc/latest/privatelink/vpc-endpoints-access.html
PRINCIPAL_CONDITION_KEYS = ("aws:PrincipalAccount", "aws:PrincipalArn")


def narrowed_to_principals(statement: dict) -> bool:
    """An endpoint statement whose "*" principal a StringEquals on the principal's account or ARN narrows."""
    equals = statement.get("Condition", {}).get("StringEquals", {})
    return any(key in equals for key in PRINCIPAL_CONDITION_KEYS)


def names_aws_owned_objects(statement: dict) -> bool:
    """An endpoint statement for URLs AWS signs (ECR layers, CloudFormation responses): one S3 action on the
    objects of named buckets, no wildcard in a bucket name."""
    resources = as_list(statement.get("Resource", []))
    texts = [as_list(r.get("Fn::Sub"))[0] if isinstance(r, dict) else r for r in resources]
    return (len(as_list(statement.get("Action", []))) == 1 and bool(texts)
            and all(isinstance(x, str) and ":s3:::" in x and "*" not in x.split(":s3:::", 1)[1].split("/")[0]
                    for x in texts))


def problems_resource_star(templates: dict) -> list[str]:
    """Resource "*" only for actions in UNSCOPABLE_ACTIONS, or in a key policy (where it means the key)."""
    problems = []
    for where, kind, s in each_statement(templates):
        if s.get("Effect") != "Allow" or kind == "trust":
            continue
        resources = as_list(s.get("Resource", []))
        if "*" not in resources:
            continue
        if kind == "endpoint" and "aws:PrincipalAccount" in json.dumps(s.get("Condition", {})):
            continue  # an endpoint policy limits this account's principals; their own policies scope resources
        if kind == "key":
            if resources != [KEY_POLICY_RESOURCE]:
                problems.append(f"{where}: a key policy statement names its key as {KEY_POLICY_RESOURCE!r} only")
            continue
        allowed = {a.lower() for a in UNSCOPABLE_ACTIONS}
        for action in as_list(s.get("Action", [])):
            if str(action).lower() not in allowed:
                problems.append(f"{where}: {action} on Resource '*', but it can be scoped (or add it to "
                                "UNSCOPABLE_ACTIONS saying why it cannot)")
    return problems


def names_a_role(resource) -> bool:
    """A role ARN: a Ref/GetAtt/import of one, or a literal/Sub ARN of one named role (no wildcard)."""
    if isinstance(resource, dict):
        if "Fn::Sub" in resource:
            text = as_list(resource["Fn::Sub"])[0]
            return ":role/" in text and "*" not in text
        return bool({"Ref", "Fn::GetAtt", "Fn::ImportValue"} & set(resource))
    return isinstance(resource, str) and ":role/" in resource and "*" not in resource


def problems_pass_role(templates: dict) -> list[str]:
    """Every iam:PassRole names the role ARNs and says which service they are passed to."""
    problems = []
    for where, _kind, s in each_statement(templates):
        if s.get("Effect") != "Allow" or not matches(as_list(s.get("Action", [])), "iam:PassRole"):
            continue
        bad = [r for r in as_list(s.get("Resource", [])) if not names_a_role(r)]
        if bad or not s.get("Resource"):
            problems.append(f"{where}: iam:PassRole on {bad or 'no resource'}; name the role ARNs")
        conditions = s.get("Condition", {})
        if not any("iam:PassedToService" in (block or {}) for block in conditions.values()):
            problems.append(f"{where}: iam:PassRole without an iam:PassedToService condition")
    return problems


def test_iam_grants_no_wildcard_action_and_no_service_wide_action(templates):
    assert problems_wildcard_actions(templates) == []


def test_iam_resource_star_only_for_actions_aws_cannot_scope(templates):
    assert problems_resource_star(templates) == []


def test_iam_pass_role_names_roles_and_the_service_they_are_passed_to(templates):
    assert problems_pass_role(templates) == []


KEY_USE_ACTIONS = ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:ReEncryptFrom", "kms:CreateGrant")


def problems_key_use(templates: dict) -> list[str]:
    """A key policy lets an AWS account principal use the key only under a condition (e.g. kms:ViaService):
    using a key is granted through the service that needs it, administering it is not using it."""
    return [f"{label}: grants {', '.join(a for a in KEY_USE_ACTIONS if matches(as_list(s.get('Action', [])), a))} "
            "to an account principal without a condition"
            for label, kind, s in each_statement(templates)
            if kind == "key" and s.get("Effect") == "Allow" and "AWS" in (s.get("Principal") or {})
            and not s.get("Condition")
            and any(matches(as_list(s.get("Action", [])), a) for a in KEY_USE_ACTIONS)]


def test_key_policies_let_the_account_use_a_key_only_through_a_service(templates):
    assert not problems_key_use(templates)


def test_rule_key_use_catches_unconditioned_use_by_the_account():
    key = {"Type": "AWS::KMS::Key", "Properties": {"KeyPolicy": {"Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "arn"}, "Action": ["kms:Describe*", "kms:Decrypt"],
         "Resource": "*"}]}}}
    assert problems_key_use(bad({"K": key}))


def test_every_unscopable_action_says_why():
    for action, why in UNSCOPABLE_ACTIONS.items():
        assert re.match(r"^[a-z0-9-]+:[A-Za-z]+$", action), f"{action}: a full action name, no wildcard"
        assert why.strip() and "\n" not in why, action


def test_policy_documents_are_found_wherever_they_are(templates):
    """The walker sees every trust policy, key policy and resource policy (else the rules above see nothing)."""
    kinds = {}
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


# --------------------------------------------------------------------------------------------------
# Network

# Data stores and the property naming their security groups.
DATA_STORE_GROUPS = {
    "AWS::RDS::DBInstance": "VPCSecurityGroups",
    "AWS::RDS::DBCluster": "VpcSecurityGroupIds",
    "AWS::ElastiCache::ReplicationGroup": "SecurityGroupIds",
    "AWS::ElastiCache::CacheCluster": "VpcSecurityGroupIds",
    "AWS::EFS::MountTarget": "SecurityGroups",
}
# Groups the network tier provides for data stores (so the rule holds before a data tier uses them).
DATA_STORE_GROUP_CONTRACTS = (contracts.DATABASE_SECURITY_GROUP_ID, contracts.CACHE_SECURITY_GROUP_ID,
                              contracts.FILE_SYSTEM_SECURITY_GROUP_ID)
NO_EGRESS_CIDR = "255.255.255.255/32"  # CloudFormation's "no egress at all" rule


def ingress_rules(templates: dict):
    """(label, env, (tier, group id) or None, rule) for inline and standalone ingress rules."""
    for label, env, tier, logical_id, r in each_resource(templates, "AWS::EC2::SecurityGroup"):
        for rule in r["Properties"].get("SecurityGroupIngress", []):
            yield label, env, (tier, logical_id), rule
    for label, env, tier, _id, r in each_resource(templates, "AWS::EC2::SecurityGroupIngress"):
        yield label, env, resolve(templates, env, tier, r["Properties"].get("GroupId")), r["Properties"]


def data_store_groups(templates: dict) -> dict[str, set[tuple[str, str]]]:
    """env -> the (tier, logical id) of every security group guarding a data store."""
    found: dict[str, set[tuple[str, str]]] = {}
    for _label, env, tier, _id, r in each_resource(templates, *DATA_STORE_GROUPS):
        for ref in as_list(r["Properties"].get(DATA_STORE_GROUPS[r["Type"]], [])):
            group = resolve(templates, env, tier, ref)
            assert group, f"{env}/{tier}.json: cannot follow {ref} to a security group"
            found.setdefault(env, set()).add(group)
    names = {c.name for c in DATA_STORE_GROUP_CONTRACTS}
    for env, tiers in templates.items():
        for tier, body in tiers.items():
            for name, output in body.get("Outputs", {}).items():
                if name in names and tier != "main":
                    found.setdefault(env, set()).add(resolve(templates, env, tier, output["Value"]))
    return found


def groups_that_need(templates: dict, env: str) -> dict[tuple[str, str], set[tuple[str, str]]]:
    """data-store group -> the security groups of the tiers that use a store it guards.

    A tier uses a store when one of its Parameters leads to the store (its endpoint, id or secret through
    the parent); the groups it runs in are its Parameters that lead to a non-data security group.
    """
    def kind(ref: tuple[str, str] | None) -> str | None:
        return templates[env][ref[0]]["Resources"][ref[1]]["Type"] if ref else None

    store_groups: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for _label, e, tier, logical_id, r in each_resource(templates, *DATA_STORE_GROUPS):
        if e != env:
            continue
        # A mount target guards the file system it belongs to.
        store = (resolve(templates, env, tier, r["Properties"]["FileSystemId"])
                 if r["Type"] == "AWS::EFS::MountTarget" else (tier, logical_id))
        for ref in as_list(r["Properties"].get(DATA_STORE_GROUPS[r["Type"]], [])):
            store_groups.setdefault(store, set()).add(resolve(templates, env, tier, ref))
    data_groups = set().union(*store_groups.values()) if store_groups else set()
    need: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for tier, body in templates[env].items():
        if tier == "main":
            continue
        leads_to = {resolve(templates, env, tier, {"Ref": p}) for p in body.get("Parameters", {})}
        runs_in = {g for g in leads_to if kind(g) == "AWS::EC2::SecurityGroup"} - data_groups
        for store, guards in store_groups.items():
            if store in leads_to:
                for guard in guards:
                    need.setdefault(guard, set()).update(runs_in)
    return need


def problems_open_ingress(templates: dict) -> list[str]:
    problems = []
    for label, _env, _group, rule in ingress_rules(templates):
        for key in ("CidrIp", "CidrIpv6"):
            if isinstance(rule.get(key), str) and ipaddress.ip_network(rule[key], strict=False).prefixlen == 0:
                problems.append(f"{label}: ingress from {rule[key]}")
    return problems


def problems_data_store_reachability(templates: dict) -> list[str]:
    """Data-store groups admit only other (non-data) security groups, one port each, and send nothing."""
    problems = []
    groups = data_store_groups(templates)
    for label, env, group, rule in ingress_rules(templates):
        if group not in groups.get(env, set()):
            continue
        source = rule.get("SourceSecurityGroupId")
        if source is None or any(k in rule for k in ("CidrIp", "CidrIpv6", "SourcePrefixListId")):
            problems.append(f"{label}: a data store admits {rule} (only security groups that need it may)")
            continue
        admitted = resolve(templates, env, group[0], source)
        if admitted in groups[env]:
            problems.append(f"{label}: a data store admits another data store's group")
        elif admitted not in groups_that_need(templates, env).get(group, set()):
            problems.append(f"{label}: a data store admits {admitted}, the group of no tier that uses it")
        if rule.get("FromPort") != rule.get("ToPort"):
            problems.append(f"{label}: a data store admits a port range {rule.get('FromPort')}-{rule.get('ToPort')}")
    for env, env_groups in sorted(groups.items()):
        for tier, logical_id in sorted(env_groups):
            egress = templates[env][tier]["Resources"][logical_id]["Properties"].get("SecurityGroupEgress")
            if not egress or any(e.get("CidrIp") != NO_EGRESS_CIDR for e in egress):
                problems.append(f"{env}/{tier}.json {logical_id}: a data store's group must allow no egress")
    for label, _env, _tier, _id, r in each_resource(templates, *DATA_STORE_GROUPS):
        if r["Properties"].get("PubliclyAccessible") is True:
            problems.append(f"{label}: publicly accessible")
    return problems


def test_no_security_group_admits_the_whole_internet(templates):
    assert problems_open_ingress(templates) == []


def test_data_stores_are_reachable_only_from_the_groups_that_need_them(templates):
    assert all(data_store_groups(templates).get(env) for env in templates), "no data-store group found"
    assert problems_data_store_reachability(templates) == []


# --------------------------------------------------------------------------------------------------
# Encryption


def covered_by_tls_deny(templates: dict, type_: str, policy_type: str, list_property: str, action: str):
    """Problems for every resource of type_ that no policy of policy_type covers with a TLS deny."""
    problems = []
    for label, env, tier, logical_id, _r in each_resource(templates, type_):
        policies = [p["Properties"] for p in templates[env][tier]["Resources"].values()
                    if p["Type"] == policy_type and {"Ref": logical_id} in as_list(p["Properties"][list_property])]
        refs = ({"Ref": logical_id}, {"Fn::GetAtt": [logical_id, "Arn"]}, "*")
        if not any(is_tls_deny(s, action) and any(ref in as_list(s.get("Resource", [])) for ref in refs)
                   for p in policies for s in as_list(p["PolicyDocument"]["Statement"])):
            problems.append(f"{label}: no {policy_type} denies {action} without TLS")
    return problems


def force_ssl(templates: dict, env: str, tier: str, group_ref) -> bool:
    group = resolve(templates, env, tier, group_ref)
    if group is None:
        return False
    parameters = templates[env][group[0]]["Resources"][group[1]]["Properties"].get("Parameters", {})
    return str(parameters.get("rds.force_ssl", parameters.get("require_secure_transport", ""))).lower() in ("1", "on")


def efs_policy_denies_plain_nfs(p: dict) -> bool:
    return any(is_tls_deny(s, "elasticfilesystem:ClientMount")
               for s in as_list(p.get("FileSystemPolicy", {}).get("Statement", [])))


def key_of(templates: dict, env: str, tier: str, value) -> bool:
    """Whether a value names an AWS::KMS::Key of the templates (through the parent)."""
    found = resolve(templates, env, tier, value) if isinstance(value, dict) else None
    return found is not None and templates[env][found[0]]["Resources"][found[1]]["Type"] == "AWS::KMS::Key"


def _rds_instance(t, env, tier, p):
    if "DBClusterIdentifier" in p:  # encryption and TLS are the cluster's
        return []
    return ([] if p.get("StorageEncrypted") is True else ["StorageEncrypted is not true"]) + (
        [] if force_ssl(t, env, tier, p.get("DBParameterGroupName")) else ["its parameter group does not force TLS"])


# type -> (templates, env, tier, properties) -> what is missing for encryption at rest and in transit
DATA_STORE_ENCRYPTION = {
    "AWS::RDS::DBInstance": _rds_instance,
    "AWS::RDS::DBCluster": lambda t, env, tier, p: (
        ([] if p.get("StorageEncrypted") is True else ["StorageEncrypted is not true"])
        + ([] if force_ssl(t, env, tier, p.get("DBClusterParameterGroupName")) else ["TLS is not forced"])),
    "AWS::EFS::FileSystem": lambda t, env, tier, p: (
        ([] if p.get("Encrypted") is True else ["Encrypted is not true"])
        + ([] if efs_policy_denies_plain_nfs(p) else ["its FileSystemPolicy does not deny mounts without TLS"])),
    "AWS::ElastiCache::ReplicationGroup": lambda t, env, tier, p: (
        ([] if p.get("AtRestEncryptionEnabled") is True else ["AtRestEncryptionEnabled is not true"])
        + ([] if p.get("TransitEncryptionEnabled") is True and p.get("TransitEncryptionMode", "required") == "required"
           else ["transit encryption is not required"])),
    "AWS::ElastiCache::CacheCluster": lambda t, env, tier, p: ["cannot encrypt at rest; use a ReplicationGroup"],
    # A customer-managed key of the project (not DynamoDB's own or AWS-managed key): its policy says who may use it.
    "AWS::DynamoDB::Table": lambda t, env, tier, p: (
        [] if p.get("SSESpecification", {}).get("SSEEnabled") is True
        and p["SSESpecification"].get("SSEType") == "KMS"
        and key_of(t, env, tier, p["SSESpecification"].get("KMSMasterKeyId"))
        else ["not encrypted with a customer-managed key (SSESpecification SSEEnabled, SSEType KMS, KMSMasterKeyId)"]),
    "AWS::SecretsManager::Secret": lambda t, env, tier, p: [] if p.get("KmsKeyId") else ["no KmsKeyId"],
    "AWS::S3::Bucket": lambda t, env, tier, p: [] if p.get("BucketEncryption") else ["no BucketEncryption"],
    "AWS::ECS::TaskDefinition": lambda t, env, tier, p: [
        f"EFS volume {v.get('Name')} without TransitEncryption ENABLED" for v in p.get("Volumes", [])
        if "EFSVolumeConfiguration" in v and v["EFSVolumeConfiguration"].get("TransitEncryption") != "ENABLED"],
}


def problems_encryption(templates: dict) -> list[str]:
    problems = []
    for label, _env, _tier, _id, r in each_resource(templates, "AWS::KMS::Key"):
        if r["Properties"].get("EnableKeyRotation") is not True:
            problems.append(f"{label}: key rotation is not enabled")
    for label, _env, _tier, _id, r in each_resource(templates, "AWS::Logs::LogGroup"):
        for prop in ("RetentionInDays", "KmsKeyId"):
            if prop not in r["Properties"]:
                problems.append(f"{label}: no {prop}")
    for label, _env, _tier, _id, r in each_resource(templates, "AWS::SNS::Topic", "AWS::SQS::Queue"):
        if not r["Properties"].get("KmsMasterKeyId"):
            problems.append(f"{label}: not encrypted with a KMS key")
    problems += covered_by_tls_deny(templates, "AWS::SNS::Topic", "AWS::SNS::TopicPolicy", "Topics", "sns:Publish")
    problems += covered_by_tls_deny(templates, "AWS::SQS::Queue", "AWS::SQS::QueuePolicy", "Queues", "sqs:SendMessage")
    for label, env, tier, _id, r in each_resource(templates, *DATA_STORE_ENCRYPTION):
        problems += [f"{label}: {m}" for m in DATA_STORE_ENCRYPTION[r["Type"]](templates, env, tier, r["Properties"])]
    return problems


def test_keys_rotate_logs_and_messages_and_data_stores_are_encrypted_and_tls_only(templates):
    assert problems_encryption(templates) == []


# --------------------------------------------------------------------------------------------------
# Data safety

KEEPS_DATA = sorted(env for env, cfg in config.ENVIRONMENTS.items() if cfg.retain_data)
DELETION_PROTECTION = re.compile(r"^DeletionProtection(Enabled)?$")


def deletion_protection_properties(region: str, type_: str) -> list[str]:
    """The properties by which the service offers deletion protection for this type (from cfn-lint's schemas)."""
    schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema(region, type_).schema
    return sorted(p for p in schema.get("properties", {}) if DELETION_PROTECTION.match(p))


def problems_data_safety(templates: dict) -> list[str]:
    problems = []
    # aws_facts says which types hold data and which policy keeps it (every log group here holds data:
    # flow, execution, task and database logs).
    for label, env, _tier, _id, r in each_resource(templates, *sorted(STATEFUL_TYPES)):
        policies, kept = (r.get("DeletionPolicy"), r.get("UpdateReplacePolicy")), RETAINING_POLICY[r["Type"]]
        if None in policies:
            problems.append(f"{label}: DeletionPolicy and UpdateReplacePolicy must both be explicit")
        elif env in KEEPS_DATA and policies != (kept, kept):
            problems.append(f"{label}: {policies}, expected {kept} where data is kept")
    # A table can be restored to any second of the last 35 days (a bad write, a bug in the job-control code).
    for label, _env, _tier, _id, r in each_resource(templates, "AWS::DynamoDB::Table"):
        if r["Properties"].get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled") is not True:
            problems.append(f"{label}: point-in-time recovery is not enabled")
    for label, env, _tier, _id, r in each_resource(templates):
        if env not in KEEPS_DATA or r["Type"].startswith("Custom::"):
            continue
        for prop in deletion_protection_properties(config.get(env).region, r["Type"]):
            if r.get("Properties", {}).get(prop) is not True:
                problems.append(f"{label}: {prop} is not true")
    return problems


def test_prod_keeps_data():
    assert "prod" in KEEPS_DATA


def test_stateful_resources_have_explicit_deletion_policies_and_prod_deletion_protection(templates):
    assert problems_data_safety(templates) == []


# --------------------------------------------------------------------------------------------------
# The rules catch what they are meant to catch


def bad(resources: dict, parameters: dict | None = None, outputs: dict | None = None) -> dict:
    """A one-environment, one-tier set of templates (prod, so that prod-only rules apply)."""
    tier = {"Resources": resources, "Parameters": parameters or {}, "Outputs": outputs or {}}
    main = {"Resources": {"BadStack": {"Type": "AWS::CloudFormation::Stack",
                                       "Properties": {"TemplateURL": "bad.json", "Parameters": {}}}}}
    return {"prod": {"bad": tier, "main": main}}


def role(*statements: dict) -> dict:
    return {"Type": "AWS::IAM::Role", "Properties": {
        "AssumeRolePolicyDocument": {"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                    "Principal": {"Service": "ecs-tasks.amazonaws.com"}}]},
        "Policies": [{"PolicyName": "P", "PolicyDocument": {"Statement": list(statements)}}]}}


@pytest.mark.parametrize("statement", [
    {"Effect": "Allow", "Action": "*", "Resource": {"Ref": "X"}},
    {"Effect": "Allow", "Action": ["s3:*"], "Resource": {"Ref": "X"}},
    {"Effect": "Allow", "NotAction": ["s3:GetObject"], "Resource": {"Ref": "X"}},
])
def test_rule_wildcard_actions_catches_wildcards(statement):
    assert problems_wildcard_actions(bad({"R": role(statement)}))


def test_rule_wildcard_actions_reads_key_policies():
    key = {"Type": "AWS::KMS::Key", "Properties": {"KeyPolicy": {"Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "arn"}, "Action": "kms:*", "Resource": "*"}]}}}
    assert problems_wildcard_actions(bad({"K": key}))


def test_rule_resource_star_catches_scopable_actions():
    assert problems_resource_star(bad({"R": role({"Effect": "Allow", "Action": ["ecs:StopTask"], "Resource": "*"})}))
    assert not problems_resource_star(bad({"R": role({"Effect": "Allow", "Action": ["xray:PutTraceSegments"],
                                                      "Resource": "*"})}))


@pytest.mark.parametrize("statement", [
    {"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*",
     "Condition": {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}},
    {"Effect": "Allow", "Action": "iam:PassRole", "Resource": {"Ref": "RoleArn"}},
    {"Effect": "Allow", "Action": "iam:Pass*", "Resource": {"Fn::Sub": "arn:aws:iam::1:role/*"},
     "Condition": {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}},
])
def test_rule_pass_role_catches_unscoped_or_unconditioned_pass_role(statement):
    assert problems_pass_role(bad({"R": role(statement)}))


@pytest.mark.parametrize("rule", [{"CidrIp": "0.0.0.0/0"}, {"CidrIpv6": "::/0"}])
def test_rule_open_ingress_catches_the_internet(rule):
    group = {"Type": "AWS::EC2::SecurityGroup", "Properties": {"SecurityGroupIngress": [
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, **rule}]}}
    standalone = {"Type": "AWS::EC2::SecurityGroupIngress", "Properties": {
        "GroupId": {"Ref": "G"}, "IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, **rule}}
    assert problems_open_ingress(bad({"G": group}))
    assert problems_open_ingress(bad({"G": group, "I": standalone}))


def test_rule_data_store_reachability_catches_cidr_ingress_and_egress():
    group = {"Type": "AWS::EC2::SecurityGroup", "Properties": {
        "SecurityGroupIngress": [{"CidrIp": "10.0.0.0/8", "IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432}],
        "SecurityGroupEgress": [{"CidrIp": "0.0.0.0/0", "IpProtocol": "-1"}]}}
    database = {"Type": "AWS::RDS::DBInstance", "Properties": {"VPCSecurityGroups": [{"Fn::GetAtt": ["G", "GroupId"]}],
                                                               "PubliclyAccessible": True}}
    found = problems_data_store_reachability(bad({"G": group, "Db": database}))
    assert len(found) == 3, found


def test_rule_data_store_reachability_catches_a_group_that_does_not_use_the_store(templates):
    changed = copy.deepcopy(templates)
    database_group = changed["dev"]["network"]["Resources"]["DatabaseSecurityGroup"]["Properties"]
    database_group["SecurityGroupIngress"].append({
        "SourceSecurityGroupId": {"Fn::GetAtt": ["ApiFunctionSecurityGroup", "GroupId"]},
        "IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432})
    found = problems_data_store_reachability(changed)
    assert found == ["dev/network.json DatabaseSecurityGroup: a data store admits ('network', "
                     "'ApiFunctionSecurityGroup'), the group of no tier that uses it"]


def test_rule_encryption_catches_each_gap():
    resources = {
        "K": {"Type": "AWS::KMS::Key", "Properties": {}},
        "L": {"Type": "AWS::Logs::LogGroup", "Properties": {}},
        "T": {"Type": "AWS::SNS::Topic", "Properties": {}},
        "Q": {"Type": "AWS::SQS::Queue", "Properties": {"KmsMasterKeyId": "k"}},
        "QP": {"Type": "AWS::SQS::QueuePolicy", "Properties": {"Queues": [{"Ref": "Q"}], "PolicyDocument": {
            "Statement": [{"Effect": "Deny", "Principal": "*", "Action": "sqs:ReceiveMessage", "Resource": "*",
                           "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}}},
        "Fs": {"Type": "AWS::EFS::FileSystem", "Properties": {"Encrypted": True}},
        "Redis": {"Type": "AWS::ElastiCache::ReplicationGroup", "Properties": {
            "AtRestEncryptionEnabled": True, "TransitEncryptionEnabled": True, "TransitEncryptionMode": "preferred"}},
        "Db": {"Type": "AWS::RDS::DBInstance", "Properties": {"StorageEncrypted": True}},
        # DynamoDB's AWS-managed key: encrypted, but not with a key of the project.
        "Jobs": {"Type": "AWS::DynamoDB::Table", "Properties": {"SSESpecification": {"SSEEnabled": True,
                                                                                     "SSEType": "KMS"}}},
    }
    found = problems_encryption(bad(resources))
    for expected in ("K: key rotation", "L: no RetentionInDays", "L: no KmsKeyId", "T: not encrypted",
                     "T: no AWS::SNS::TopicPolicy", "Q: no AWS::SQS::QueuePolicy", "Fs: its FileSystemPolicy",
                     "Redis: transit", "Db: its parameter group", "Jobs: not encrypted with a customer-managed key"):
        assert any(expected in p for p in found), (expected, found)


def test_rule_data_safety_catches_missing_policies_and_protection():
    resources = {
        "Db": {"Type": "AWS::RDS::DBInstance", "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
               "Properties": {}},
        "Q": {"Type": "AWS::SQS::Queue", "DeletionPolicy": "Retain", "Properties": {}},
        "Jobs": {"Type": "AWS::DynamoDB::Table", "DeletionPolicy": "Delete", "UpdateReplacePolicy": "Delete",
                 "Properties": {"DeletionProtectionEnabled": True}},
    }
    found = problems_data_safety(bad(resources))
    assert any("Jobs: ('Delete', 'Delete'), expected Retain" in p for p in found), found
    assert any("Jobs: point-in-time recovery is not enabled" in p for p in found), found
    assert any("Db: ('Retain', 'Retain'), expected Snapshot" in p for p in found), found
    assert any("Db: DeletionProtection is not true" in p for p in found), found
    assert any("Q: DeletionPolicy and UpdateReplacePolicy" in p for p in found), found


def test_resolve_follows_parameters_through_the_parent(templates):
    """The task security group, as the workflow sees it, is the network tier's resource."""
    assert resolve(templates, "dev", "workflow", {"Ref": contracts.TASK_SECURITY_GROUP_ID.name}) == (
        "network", "TaskSecurityGroup")
