"""Security-group rule changes (inline and standalone rules) and whether they widen network reach."""

from __future__ import annotations

from dataclasses import dataclass

from generator.diff.values import MISSING, as_list, ref_name


@dataclass(frozen=True)
class SgRule:
    stack: str
    group: str
    direction: str  # ingress or egress
    protocol: str  # tcp, udp, icmp, all or a number
    ports: str  # "443", "1024-2048", "all"
    peer: str


PROTOCOLS = {"-1": "all", "6": "tcp", "17": "udp", "1": "icmp", "58": "icmpv6"}
PEER_KEYS = {"CidrIp": "", "CidrIpv6": "", "SourceSecurityGroupId": "sg:", "DestinationSecurityGroupId": "sg:",
             "SourceSecurityGroupName": "sg-name:", "SourcePrefixListId": "pl:", "DestinationPrefixListId": "pl:"}


def _rule(stack: str, group: str, direction: str, r: dict) -> SgRule:
    proto = str(r.get("IpProtocol", "-1")).lower()
    proto = PROTOCOLS.get(proto, proto)
    lo, hi = r.get("FromPort", MISSING), r.get("ToPort", MISSING)
    if proto == "all" or (lo in (MISSING, -1) and hi in (MISSING, -1)) or (lo, hi) == (0, 65535):
        ports = "all"
    elif proto.startswith("icmp"):
        ports = f"type {ref_name(lo)} code {ref_name(hi)}"  # for ICMP the "ports" are type and code
    else:
        ports = ref_name(lo) if lo == hi or hi is MISSING else f"{ref_name(lo)}-{ref_name(hi)}"
    peers = [prefix + ref_name(r[k]).removesuffix(".GroupId") for k, prefix in PEER_KEYS.items() if k in r]
    return SgRule(stack, group, direction, proto, ports, " ".join(peers) or "?")


def sg_rules(stack: str, template: dict) -> set[SgRule]:
    out = set()
    for lid, res in (template.get("Resources") or {}).items():
        rtype, props = res.get("Type"), res.get("Properties") or {}
        if rtype == "AWS::EC2::SecurityGroup":
            for key, direction in (("SecurityGroupIngress", "ingress"), ("SecurityGroupEgress", "egress")):
                out |= {_rule(stack, lid, direction, r) for r in as_list(props.get(key)) if isinstance(r, dict)}
            if "SecurityGroupEgress" not in props and "VpcId" in props:
                # EC2 adds an allow-all egress rule to a VPC group that declares no egress of its own.
                out.add(SgRule(stack, lid, "egress", "all", "all", "0.0.0.0/0 (default)"))
        elif rtype in ("AWS::EC2::SecurityGroupIngress", "AWS::EC2::SecurityGroupEgress"):
            group = ref_name(props.get("GroupId", props.get("GroupName", "?"))).removesuffix(".GroupId")
            out.add(_rule(stack, group, "ingress" if rtype.endswith("Ingress") else "egress", props))
    return out


def _port_range(ports: str) -> tuple[int, int] | None:
    if ports == "all":
        return 0, 65535
    lo, _, hi = ports.partition("-")
    try:
        return int(lo), int(hi or lo)
    except ValueError:
        return None


def _rule_covered(rule: SgRule, others: set[SgRule]) -> bool:
    new_range = _port_range(rule.ports)
    for o in others:
        if (o.stack, o.group, o.direction, o.peer.removesuffix(" (default)")) != \
                (rule.stack, rule.group, rule.direction, rule.peer.removesuffix(" (default)")):
            continue
        old_range = _port_range(o.ports)
        if o.protocol == "all" or (o.protocol == rule.protocol and (
                o.ports == rule.ports or (old_range and new_range
                                          and old_range[0] <= new_range[0] and new_range[1] <= old_range[1]))):
            return True
    return False


@dataclass
class SgChange:
    sign: str
    rule: SgRule
    widens: bool


def sg_changes(old: dict[str, dict], new: dict[str, dict]) -> list[SgChange]:
    out = []
    for key in sorted(old.keys() | new.keys()):
        before, after = sg_rules(key, old.get(key) or {}), sg_rules(key, new.get(key) or {})
        out += [SgChange("-", r, False) for r in before - after]
        out += [SgChange("+", r, not _rule_covered(r, before)) for r in after - before]
    return sorted(out, key=lambda c: (c.rule.stack, c.rule.group, c.rule.direction, c.sign == "+",
                                      c.rule.protocol, c.rule.ports, c.rule.peer))

