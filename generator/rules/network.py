"""Network rules (VP2xx): security-group ingress and egress, and who reaches a data store."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from generator import contracts, graph
from generator.rules.common import Templates, as_list, each_resource, resolve, rule

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

Ref = tuple[str, str]  # (tier, logical id)


def ingress_rules(templates: Templates) -> Iterator[tuple[str, str, Ref | None, dict]]:
    """(label, env, (tier, group id) or None, rule) for inline and standalone ingress rules."""
    for where, env, tier, logical_id, r in each_resource(templates, "AWS::EC2::SecurityGroup"):
        for ingress in r["Properties"].get("SecurityGroupIngress", []):
            yield where, env, (tier, logical_id), ingress
    for where, env, tier, _id, r in each_resource(templates, "AWS::EC2::SecurityGroupIngress"):
        yield where, env, resolve(templates, env, tier, r["Properties"].get("GroupId")), r["Properties"]


class UnfollowableGroup(ValueError):
    """A data store names a security group the templates do not lead to."""


def data_store_groups(templates: Templates) -> dict[str, set[Ref]]:
    """env -> the (tier, logical id) of every security group guarding a data store."""
    found: dict[str, set[Ref]] = {}
    for _label, env, tier, _id, r in each_resource(templates, *DATA_STORE_GROUPS):
        for ref in as_list(r["Properties"].get(DATA_STORE_GROUPS[r["Type"]], [])):
            group = resolve(templates, env, tier, ref)
            if group is None:
                raise UnfollowableGroup(f"{env}/{tier}.json: cannot follow {ref} to a security group")
            found.setdefault(env, set()).add(group)
    names = {c.name for c in DATA_STORE_GROUP_CONTRACTS}
    for env, tiers in templates.items():
        for tier, body in tiers.items():
            for name, output in body.get("Outputs", {}).items():
                if name not in names or tier == graph.PARENT:
                    continue
                group = resolve(templates, env, tier, output["Value"])
                if group is not None:
                    found.setdefault(env, set()).add(group)
    return found


def groups_that_need(templates: Templates, env: str) -> dict[Ref, set[Ref]]:
    """data-store group -> the security groups of the tiers that use a store it guards.

    A tier uses a store when one of its Parameters leads to the store (its endpoint, id or secret through
    the parent); the groups it runs in are its Parameters that lead to a non-data security group.
    """
    def kind(ref: Ref | None) -> str | None:
        return templates[env][ref[0]]["Resources"][ref[1]]["Type"] if ref else None

    store_groups: dict[Ref | None, set[Ref | None]] = {}
    for _label, e, tier, logical_id, r in each_resource(templates, *DATA_STORE_GROUPS):
        if e != env:
            continue
        # A mount target guards the file system it belongs to.
        store = (resolve(templates, env, tier, r["Properties"]["FileSystemId"])
                 if r["Type"] == "AWS::EFS::MountTarget" else (tier, logical_id))
        for ref in as_list(r["Properties"].get(DATA_STORE_GROUPS[r["Type"]], [])):
            store_groups.setdefault(store, set()).add(resolve(templates, env, tier, ref))
    data_groups = set().union(*store_groups.values()) if store_groups else set()
    need: dict[Ref, set[Ref]] = {}
    for tier, body in templates[env].items():
        if tier == graph.PARENT:
            continue
        leads_to = {resolve(templates, env, tier, {"Ref": p}) for p in body.get("Parameters", {})}
        runs_in = {g for g in leads_to if g and kind(g) == "AWS::EC2::SecurityGroup"} - data_groups
        for store, guards in store_groups.items():
            if store in leads_to:
                for guard in guards:
                    if guard is not None:
                        need.setdefault(guard, set()).update(runs_in)
    return need


@rule("VP201", "No security group admits the whole internet (0.0.0.0/0 or ::/0)",
      "https://docs.aws.amazon.com/vpc/latest/userguide/security-group-rules.html")
def open_ingress(templates: Templates) -> list[str]:
    problems = []
    for where, _env, _group, ingress in ingress_rules(templates):
        for key in ("CidrIp", "CidrIpv6"):
            if isinstance(ingress.get(key), str) and ipaddress.ip_network(ingress[key], strict=False).prefixlen == 0:
                problems.append(f"{where}: ingress from {ingress[key]}")
    return problems


@rule("VP202", "A data store's group admits, on one port, only the groups of tiers that use the store, and sends "
      "nothing; no data store is publicly accessible",
      "https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/Overview.RDSSecurityGroups.html")
def data_store_reachability(templates: Templates) -> list[str]:
    problems = []
    try:
        groups = data_store_groups(templates)
    except UnfollowableGroup as e:
        return [str(e)]
    need = {env: groups_that_need(templates, env) for env in groups}
    for where, env, group, ingress in ingress_rules(templates):
        if group is None or group not in groups.get(env, set()):
            continue
        source = ingress.get("SourceSecurityGroupId")
        if source is None or any(k in ingress for k in ("CidrIp", "CidrIpv6", "SourcePrefixListId")):
            problems.append(f"{where}: a data store admits {ingress} (only security groups that need it may)")
            continue
        admitted = resolve(templates, env, group[0], source)
        if admitted in groups[env]:
            problems.append(f"{where}: a data store admits another data store's group")
        elif admitted not in need[env].get(group, set()):
            problems.append(f"{where}: a data store admits {admitted}, the group of no tier that uses it")
        if ingress.get("FromPort") != ingress.get("ToPort"):
            ports = f"{ingress.get('FromPort')}-{ingress.get('ToPort')}"
            problems.append(f"{where}: a data store admits a port range {ports}")
    for env, env_groups in sorted(groups.items()):
        for tier, logical_id in sorted(env_groups):
            egress = templates[env][tier]["Resources"][logical_id]["Properties"].get("SecurityGroupEgress")
            if not egress or any(e.get("CidrIp") != NO_EGRESS_CIDR for e in egress):
                problems.append(f"{env}/{tier}.json {logical_id}: a data store's group must allow no egress")
    for where, _env, _tier, _id, r in each_resource(templates, *DATA_STORE_GROUPS):
        if r["Properties"].get("PubliclyAccessible") is True:
            problems.append(f"{where}: publicly accessible")
    return problems
