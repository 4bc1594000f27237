"""Data-safety rules (VP4xx): what holds data survives a deletion or a replacement."""

from __future__ import annotations

import re

from generator import config
from generator.aws_facts import RETAINING_POLICY, STATEFUL_TYPES, resource_schema
from generator.rules.common import Templates, each_resource, rule

# The environments whose data is kept (prod): retaining policies and deletion protection apply there.
KEEPS_DATA = sorted(env for env, cfg in config.ENVIRONMENTS.items() if cfg.retain_data)
DELETION_PROTECTION = re.compile(r"^DeletionProtection(Enabled)?$")


@rule("VP401", "Every stateful resource has an explicit DeletionPolicy and UpdateReplacePolicy; where data is kept, "
      "the retaining one (Snapshot where supported, else Retain)",
      "https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-attribute-deletionpolicy.html")
def retention_policies(templates: Templates) -> list[str]:
    # aws_facts says which types hold data and which policy keeps it (every log group here holds data:
    # flow, execution, task and database logs).
    problems = []
    for where, env, _tier, _id, r in each_resource(templates, *sorted(STATEFUL_TYPES)):
        policies, kept = (r.get("DeletionPolicy"), r.get("UpdateReplacePolicy")), RETAINING_POLICY[r["Type"]]
        if None in policies:
            problems.append(f"{where}: DeletionPolicy and UpdateReplacePolicy must both be explicit")
        elif env in KEEPS_DATA and policies != (kept, kept):
            problems.append(f"{where}: {policies}, expected {kept} where data is kept")
    return problems


@rule("VP402", "Every DynamoDB table has point-in-time recovery (any second of the last 35 days)",
      "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/PointInTimeRecovery.html")
def point_in_time_recovery(templates: Templates) -> list[str]:
    return [f"{where}: point-in-time recovery is not enabled"
            for where, *_, r in each_resource(templates, "AWS::DynamoDB::Table")
            if (r["Properties"].get("PointInTimeRecoverySpecification") or {}).get("PointInTimeRecoveryEnabled")
            is not True]


def deletion_protection_properties(type_: str) -> list[str]:
    """The properties by which the service offers deletion protection for this type (from cfn-lint's schemas)."""
    schema = resource_schema(type_) or {}
    return sorted(p for p in schema.get("properties", {}) if DELETION_PROTECTION.match(p))


@rule("VP403", "Where data is kept, deletion protection is on wherever the resource's schema offers it "
      "(DeletionProtection*)",
      "https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_DeleteInstance.html#USER_DeletionProtection")
def deletion_protection(templates: Templates) -> list[str]:
    return [f"{where}: {prop} is not true" for where, env, _tier, _id, r in each_resource(templates)
            if env in KEEPS_DATA and not r["Type"].startswith("Custom::")
            for prop in deletion_protection_properties(r["Type"])
            if r.get("Properties", {}).get(prop) is not True]
