"""Review diff engine: what a template change really does (pure functions on template dicts).

`diff_templates(old, new)` takes two `{"<env>/<file>": template dict}` maps and returns a Report:
per stack the resources added, removed and changed (each changed property with its JSON path),
which changes replace a resource (from the create-only lists in the resource schemas cfn-lint
ships, read by aws_facts), the IAM statement and security-group rule changes with a widening
verdict, and state machine definitions compared state by state. Rendering lives in diff_render.py, loading in
diff_cli.py.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field
from typing import Any

from generator.aws_facts import NESTED_STACK_TYPE, RETAINING_POLICIES, STATEFUL_TYPES, create_only
from generator.config import ENVIRONMENTS

REPLACED, MAY_BE_REPLACED = "replaced", "may be replaced"

# Resource attributes compared besides Properties (Type is handled on its own).
ATTRIBUTES = ("Condition", "CreationPolicy", "DeletionPolicy", "DependsOn", "Metadata", "UpdatePolicy",
              "UpdateReplacePolicy")

# Where policy documents live: type -> ((property, kind), ...); kind is identity, trust or resource.
POLICY_PROPERTIES = {
    "AWS::IAM::Role": (("AssumeRolePolicyDocument", "trust"),),
    "AWS::IAM::Policy": (("PolicyDocument", "identity"),),
    "AWS::IAM::ManagedPolicy": (("PolicyDocument", "identity"),),
    "AWS::KMS::Key": (("KeyPolicy", "resource"),),
    "AWS::SNS::TopicPolicy": (("PolicyDocument", "resource"),),
    "AWS::SQS::QueuePolicy": (("PolicyDocument", "resource"),),
    "AWS::S3::BucketPolicy": (("PolicyDocument", "resource"),),
    "AWS::EFS::FileSystem": (("FileSystemPolicy", "resource"),),
    "AWS::SecretsManager::ResourcePolicy": (("ResourcePolicy", "resource"),),
    "AWS::Logs::ResourcePolicy": (("PolicyDocument", "resource"),),
    "AWS::ECR::Repository": (("RepositoryPolicyText", "resource"),),
    "AWS::ApiGateway::RestApi": (("Policy", "resource"),),
}
# Inline policies: type -> property holding a list of {PolicyName, PolicyDocument}.
INLINE_POLICY_LISTS = {"AWS::IAM::Role": "Policies", "AWS::IAM::User": "Policies", "AWS::IAM::Group": "Policies"}

STATE_MACHINE_TYPE = "AWS::StepFunctions::StateMachine"
# List elements are matched by the first of these keys that names every element uniquely (Tags by Key ...).
IDENTITY_KEYS = ("Key", "Name", "Sid", "PolicyName", "ContainerName", "Id")


class _Missing:
    def __repr__(self) -> str:
        return "(absent)"


MISSING: Any = _Missing()


# ---------------------------------------------------------------- generic value diff

@dataclass(frozen=True)
class Change:
    """One changed value: `path` is a JSON path from the compared object (e.g. Properties.Tags[Key=Env].Value)."""
    path: str
    old: Any = MISSING
    new: Any = MISSING
    replacement: str | None = None  # REPLACED or MAY_BE_REPLACED when the schema says so


def _is_intrinsic(v: Any) -> bool:
    if not (isinstance(v, dict) and len(v) == 1):
        return False
    key = next(iter(v))
    return key in ("Ref", "Condition") or key.startswith("Fn::")


def _identity_key(old: list, new: list) -> str | None:
    items = old + new
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    for key in IDENTITY_KEYS:
        if all(isinstance(i.get(key), str) for i in items) and all(
                len({i[key] for i in side}) == len(side) for side in (old, new)):
            return key
    return None


def diff_values(old: Any, new: Any, path: tuple = ()) -> list[tuple[tuple, Any, Any]]:
    """(path segments, old, new) for every differing leaf; a segment is a key, an index or (key, value)."""
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict) and not (
            (_is_intrinsic(old) or _is_intrinsic(new)) and old.keys() != new.keys()):
        out = []
        for k in sorted(old.keys() | new.keys()):
            out += diff_values(old.get(k, MISSING), new.get(k, MISSING), path + (k,))
        return out
    if isinstance(old, list) and isinstance(new, list):
        key = _identity_key(old, new)
        if key:
            olds, news = {i[key]: i for i in old}, {i[key]: i for i in new}
            out = []
            for name in [i[key] for i in old] + [i[key] for i in new if i[key] not in olds]:
                out += diff_values(olds.get(name, MISSING), news.get(name, MISSING), path + ((key, name),))
            return out
        if len(old) == len(new):
            out = []
            for i, (a, b) in enumerate(zip(old, new)):
                out += diff_values(a, b, path + (i,))
            return out
    return [(path, old, new)]


def path_text(path: tuple) -> str:
    out = ""
    for seg in path:
        if isinstance(seg, int):
            out += f"[{seg}]"
        elif isinstance(seg, tuple):
            out += f"[{seg[0]}={seg[1]}]"
        else:
            out += f".{seg}" if out else str(seg)
    return out or "(root)"


def compact(v: Any) -> str:
    if v is MISSING:
        return "(absent)"
    if isinstance(v, str):
        return v
    return json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _matches(pointer: tuple[str, ...], path: tuple) -> bool:
    """A change at `path` (below Properties) touches `pointer` when one is a prefix of the other."""
    for p, seg in zip(pointer, path):
        if p == "*" and isinstance(seg, (int, tuple)):
            continue
        if p != seg:
            return False
    return True


def replacement_for(resource_type: str, prop_path: tuple) -> str | None:
    always, conditional = create_only(resource_type)
    if any(_matches(p, prop_path) for p in always):
        return REPLACED
    if any(_matches(p, prop_path) for p in conditional):
        return MAY_BE_REPLACED
    return None


def worst(*levels: str | None) -> str | None:
    return REPLACED if REPLACED in levels else MAY_BE_REPLACED if MAY_BE_REPLACED in levels else None


# ---------------------------------------------------------------- state machines

@dataclass
class StateChange:
    name: str
    fields: list[str]  # top-level fields that changed: Retry, Catch, Next, Parameters ...
    changes: list[Change]


@dataclass
class WorkflowDiff:
    added: list[tuple[str, str]] = field(default_factory=list)  # (state, Type)
    removed: list[tuple[str, str]] = field(default_factory=list)
    changed: list[StateChange] = field(default_factory=list)
    top: list[Change] = field(default_factory=list)  # StartAt, TimeoutSeconds, Comment ...

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed or self.top)


def _placeholder(v: Any) -> str:
    """A quote-free stand-in for an intrinsic inside a joined definition string (keeps it valid JSON)."""
    if isinstance(v, dict) and "Ref" in v:
        return f"${{{v['Ref']}}}"
    if isinstance(v, dict) and "Fn::GetAtt" in v:
        att = v["Fn::GetAtt"]
        return f"${{{'.'.join(att) if isinstance(att, list) else att}}}"
    return "${intrinsic}"


def definition_of(props: dict) -> dict | None:
    """The state machine definition as an object: Definition, or DefinitionString (plain, Fn::Sub, Fn::Join)."""
    if isinstance(props.get("Definition"), dict):
        return props["Definition"]
    text = props.get("DefinitionString")
    if isinstance(text, dict) and "Fn::Sub" in text:
        sub = text["Fn::Sub"]
        text = sub[0] if isinstance(sub, list) else sub
    elif isinstance(text, dict) and "Fn::Join" in text:
        sep, parts = text["Fn::Join"]
        text = sep.join(p if isinstance(p, str) else _placeholder(p) for p in parts) if isinstance(parts, list) \
            else None
    if not isinstance(text, str):
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def flatten_states(defn: dict, prefix: str = "") -> dict[str, dict]:
    """Every state by name, nested Parallel branches and Map processors as `Outer/Branches[0]/Inner`."""
    out: dict[str, dict] = {}
    for name, state in (defn.get("States") or {}).items():
        if not isinstance(state, dict):
            out[prefix + name] = {"(value)": state}
            continue
        own = dict(state)
        if isinstance(state.get("Branches"), list):
            own["Branches"] = [{k: v for k, v in b.items() if k != "States"} for b in state["Branches"]]
            for i, branch in enumerate(state["Branches"]):
                out.update(flatten_states(branch, f"{prefix}{name}/Branches[{i}]/"))
        for key in ("ItemProcessor", "Iterator"):
            if isinstance(state.get(key), dict):
                own[key] = {k: v for k, v in state[key].items() if k != "States"}
                out.update(flatten_states(state[key], f"{prefix}{name}/{key}/"))
        out[prefix + name] = own
    return out


def diff_definitions(old: dict, new: dict) -> WorkflowDiff:
    wd = WorkflowDiff()
    wd.top = [Change(path_text(p), a, b) for p, a, b in diff_values(
        {k: v for k, v in old.items() if k != "States"}, {k: v for k, v in new.items() if k != "States"})]
    olds, news = flatten_states(old), flatten_states(new)
    wd.removed = [(n, str(olds[n].get("Type", "?"))) for n in sorted(olds.keys() - news.keys())]
    wd.added = [(n, str(news[n].get("Type", "?"))) for n in sorted(news.keys() - olds.keys())]
    for name in sorted(olds.keys() & news.keys()):
        diffs = diff_values(olds[name], news[name])
        if diffs:
            wd.changed.append(StateChange(
                name, sorted({str(p[0]) for p, _, _ in diffs if p}),
                [Change(path_text(p), a, b) for p, a, b in diffs]))
    return wd


# ---------------------------------------------------------------- resources and stacks

@dataclass
class ResourceChange:
    logical_id: str
    type: str
    action: str  # added, removed, changed, renamed (a new logical ID: removal plus addition)
    replacement: str | None = None
    reason: str = ""
    old_logical_id: str | None = None
    changes: list[Change] = field(default_factory=list)
    workflow: WorkflowDiff | None = None


@dataclass
class EntryChange:
    """A Parameter or Output added, removed or changed."""
    name: str
    action: str
    changes: list[Change] = field(default_factory=list)


@dataclass
class StackDiff:
    env: str
    file: str
    status: str  # added, removed, changed, unchanged
    resources: list[ResourceChange] = field(default_factory=list)
    parameters: list[EntryChange] = field(default_factory=list)
    outputs: list[EntryChange] = field(default_factory=list)
    template: list[Change] = field(default_factory=list)  # Description, Conditions, Mappings ...

    @property
    def key(self) -> str:
        return f"{self.env}/{self.file}"


def _resource_changes(rtype: str, old: dict, new: dict) -> tuple[list[Change], WorkflowDiff | None]:
    old_props, new_props = old.get("Properties") or {}, new.get("Properties") or {}
    workflow = None
    if rtype == STATE_MACHINE_TYPE:
        old_def, new_def = definition_of(old_props), definition_of(new_props)
        if old_def is not None and new_def is not None:
            # Compared state by state; only what surrounds the definition (Fn::Sub variables) stays a property.
            workflow = diff_definitions(old_def, new_def) or None
            old_props, new_props = _without_definition(old_props), _without_definition(new_props)
    changes = [Change(path_text(("Properties",) + p), a, b, replacement_for(rtype, p))
               for p, a, b in diff_values(old_props, new_props)]
    for attr in ATTRIBUTES:
        changes += [Change(path_text((attr,) + p), a, b)
                    for p, a, b in diff_values(old.get(attr, MISSING), new.get(attr, MISSING))]
    return changes, workflow


def _without_definition(props: dict) -> dict:
    out = {k: v for k, v in props.items() if k not in ("Definition", "DefinitionString")}
    sub = props.get("DefinitionString")
    if isinstance(sub, dict) and isinstance(sub.get("Fn::Sub"), list) and len(sub["Fn::Sub"]) > 1:
        out["DefinitionString"] = {"Fn::Sub": [None, sub["Fn::Sub"][1]]}  # keep the variables
    return out


def _similarity(a: dict, b: dict) -> float:
    pa, pb = a.get("Properties") or {}, b.get("Properties") or {}
    keys = pa.keys() | pb.keys()
    return 1.0 if not keys else sum(pa.get(k, MISSING) == pb.get(k, MISSING) for k in keys) / len(keys)


def _pair_renames(old: dict, new: dict, removed: list[str], added: list[str]) -> list[tuple[str, str]]:
    """Pair removed and added logical IDs of one type: the most similar first; a lone pair always."""
    pairs = []
    for rtype in sorted({old[r].get("Type") for r in removed} & {new[a].get("Type") for a in added}):
        rs = [r for r in removed if old[r].get("Type") == rtype]
        ads = [a for a in added if new[a].get("Type") == rtype]
        lone = len(rs) == 1 and len(ads) == 1
        scored = sorted(((-_similarity(old[r], new[a]), r, a) for r in rs for a in ads))
        used: set[str] = set()
        for score, r, a in scored:
            if r not in used and a not in used and (lone or -score >= 0.5):
                pairs.append((r, a))
                used |= {r, a}
    return pairs


def diff_resources(old: dict, new: dict) -> list[ResourceChange]:
    out = []
    removed = sorted(old.keys() - new.keys())
    added = sorted(new.keys() - old.keys())
    renames = _pair_renames(old, new, removed, added)
    for r, a in renames:
        changes, workflow = _resource_changes(new[a].get("Type", "?"), old[r], new[a])
        out.append(ResourceChange(a, new[a].get("Type", "?"), "renamed", REPLACED,
                                  f"logical ID changed from {r}", r, changes, workflow))
    paired = {x for pair in renames for x in pair}
    out += [ResourceChange(r, old[r].get("Type", "?"), "removed") for r in removed if r not in paired]
    out += [ResourceChange(a, new[a].get("Type", "?"), "added") for a in added if a not in paired]
    for lid in sorted(old.keys() & new.keys()):
        o, n = old[lid], new[lid]
        if o == n:
            continue
        if o.get("Type") != n.get("Type"):
            out.append(ResourceChange(lid, n.get("Type", "?"), "changed", REPLACED,
                                      f"type changed from {o.get('Type')}",
                                      changes=[Change("Type", o.get("Type"), n.get("Type"), REPLACED)]))
            continue
        changes, workflow = _resource_changes(n.get("Type", "?"), o, n)
        level = worst(*(c.replacement for c in changes))
        reason = ", ".join(sorted({c.path for c in changes if c.replacement == level})) if level else ""
        out.append(ResourceChange(lid, n.get("Type", "?"), "changed", level,
                                  f"{'create-only' if level == REPLACED else 'conditionally create-only'}: {reason}"
                                  if level else "", changes=changes, workflow=workflow))
    return sorted(out, key=lambda c: c.logical_id)


def _diff_entries(old: dict, new: dict) -> list[EntryChange]:
    out = []
    for name in sorted(old.keys() | new.keys()):
        if name not in new:
            out.append(EntryChange(name, "removed", [Change(name, old[name], MISSING)]))
        elif name not in old:
            out.append(EntryChange(name, "added", [Change(name, MISSING, new[name])]))
        elif old[name] != new[name]:
            out.append(EntryChange(name, "changed",
                                   [Change(path_text(p), a, b) for p, a, b in diff_values(old[name], new[name])]))
    return out


def diff_stack(env: str, file: str, old: dict | None, new: dict | None) -> StackDiff:
    status = "added" if old is None else "removed" if new is None else "changed" if old != new else "unchanged"
    old, new = old or {}, new or {}
    sd = StackDiff(env, file, status)
    sd.resources = diff_resources(old.get("Resources") or {}, new.get("Resources") or {})
    sd.parameters = _diff_entries(old.get("Parameters") or {}, new.get("Parameters") or {})
    sd.outputs = _diff_entries(old.get("Outputs") or {}, new.get("Outputs") or {})
    if status == "changed":  # an added or removed stack needs no line for its Description
        rest = ({k: v for k, v in t.items() if k not in ("Resources", "Parameters", "Outputs")} for t in (old, new))
        sd.template = [Change(path_text(p), a, b) for p, a, b in diff_values(*rest)]
    return sd


# ---------------------------------------------------------------- data loss

@dataclass
class DataLossRisk:
    stack: str  # <env>/<file>
    logical_id: str
    type: str
    risk: str  # replaced, may be replaced, removed
    reason: str
    retained: str  # the policy that keeps the old copy (Retain/Snapshot), or ""


def _kept(resource: dict, attr: str) -> str:
    policy = resource.get(attr, "Delete")
    return policy if policy in RETAINING_POLICIES else ""


def data_loss_risks(stacks: list[StackDiff], old: dict[str, dict]) -> list[DataLossRisk]:
    out = []
    for sd in stacks:
        old_res = (old.get(sd.key) or {}).get("Resources") or {}
        for rc in sd.resources:
            before = old_res.get(rc.old_logical_id or rc.logical_id, {})
            if rc.action in ("removed", "renamed"):  # the old logical ID is deleted: DeletionPolicy decides
                risk, kept = "removed" if rc.action == "removed" else REPLACED, _kept(before, "DeletionPolicy")
            elif rc.replacement:
                risk, kept = rc.replacement, _kept(before, "UpdateReplacePolicy")
            else:
                continue
            if rc.type in STATEFUL_TYPES:
                out.append(DataLossRisk(sd.key, rc.logical_id, rc.type, risk, rc.reason, kept))
            elif rc.type == NESTED_STACK_TYPE:
                # Replacing or removing a nested stack deletes every stateful resource inside it.
                child_file = _template_file(before)
                child = (old.get(f"{sd.env}/{child_file}") or {}).get("Resources") or {}
                for lid, res in sorted(child.items()):
                    if res.get("Type") in STATEFUL_TYPES:
                        out.append(DataLossRisk(f"{sd.env}/{child_file}", lid, res["Type"], risk,
                                                f"its nested stack {rc.logical_id} is {risk}",
                                                _kept(res, "DeletionPolicy")))
    # A removed tier is seen twice (its nested stack and its own template): report each resource once.
    unique = {(r.stack, r.logical_id): r for r in reversed(out)}
    return [r for r in out if unique[(r.stack, r.logical_id)] is r]


def _template_file(stack_resource: dict) -> str:
    url = (stack_resource.get("Properties") or {}).get("TemplateURL")
    return url.rsplit("/", 1)[-1] if isinstance(url, str) else "?"


# ---------------------------------------------------------------- IAM statements

def ref_name(v: Any) -> str:
    """A short, readable name for a value that may be an intrinsic (Ref X -> X, GetAtt X.Y -> X.Y)."""
    if isinstance(v, dict) and len(v) == 1:
        (k, arg), = v.items()
        if k == "Ref":
            return str(arg)
        if k == "Fn::GetAtt":
            return ".".join(arg) if isinstance(arg, list) else str(arg)
        if k == "Fn::Sub" and isinstance(arg, str):
            return arg
        if k == "Fn::Sub" and isinstance(arg, list) and len(arg) == 2 and isinstance(arg[1], dict):
            text = arg[0]  # inline the variables so the value stays readable and complete
            for name, value in sorted(arg[1].items()):
                text = text.replace(f"${{{name}}}", ref_name(value))
            return text
        if k == "Fn::ImportValue":
            return f"import:{ref_name(arg)}"
    return compact(v)


def _as_list(v: Any) -> list:
    return v if isinstance(v, list) else [] if v is None or v is MISSING else [v]


def _principal_text(p: Any) -> str:
    if p is None:
        return ""
    if isinstance(p, dict) and not _is_intrinsic(p):
        return " ".join(f"{k}:{ref_name(x)}" for k, v in sorted(p.items()) for x in _as_list(v))
    return ref_name(p)


@dataclass(frozen=True)
class _Atom:
    """One action on one resource granted or denied by one statement (the unit compared)."""
    stack: str
    policy: str
    effect: str
    principal: str
    condition: str
    action: str
    resource: str


def _statements(doc: Any) -> list[dict]:
    if isinstance(doc, str):
        try:
            doc = json.loads(doc)
        except ValueError:
            return []
    if not isinstance(doc, dict):
        return []
    return [s for s in _as_list(doc.get("Statement")) if isinstance(s, dict)]


def _policies(lid: str, res: dict) -> list[tuple[str, Any]]:
    """(label, policy document) for every policy a resource carries."""
    rtype, props = res.get("Type"), res.get("Properties") or {}
    out = [(f"{lid} ({kind} {prop})", props[prop])
           for prop, kind in POLICY_PROPERTIES.get(rtype, ()) if prop in props]
    for item in _as_list(props.get(INLINE_POLICY_LISTS.get(rtype, ""))):
        if isinstance(item, dict):
            out.append((f"{lid} (identity {ref_name(item.get('PolicyName'))})", item.get("PolicyDocument")))
    if rtype == "AWS::IAM::Role" and props.get("ManagedPolicyArns"):
        # An attached managed policy is shown as one pseudo-statement per policy ARN.
        out.append((f"{lid} (identity managed)", {"Statement": [
            {"Effect": "Allow", "Action": f"managed-policy:{ref_name(a)}", "Resource": "*"}
            for a in _as_list(props["ManagedPolicyArns"])]}))
    return out


def _atoms(stack: str, template: dict) -> set[_Atom]:
    out = set()
    for lid, res in (template.get("Resources") or {}).items():
        for label, doc in _policies(lid, res):
            for s in _statements(doc):
                actions = [a if k == "Action" else f"NOT {a}" for k in ("Action", "NotAction")
                           for a in map(ref_name, _as_list(s.get(k)))]
                res_list = [r if k == "Resource" else f"NOT {r}" for k in ("Resource", "NotResource")
                            for r in map(ref_name, _as_list(s.get(k)))] or [""]
                principal = _principal_text(s.get("Principal")) + (
                    f" NOT {_principal_text(s['NotPrincipal'])}" if "NotPrincipal" in s else "")
                cond = compact(s["Condition"]) if s.get("Condition") else ""
                for a in actions or [""]:
                    for r in res_list:
                        out.add(_Atom(stack, label, str(s.get("Effect", "Allow")), principal, cond, a, r))
    return out


@dataclass
class IamChange:
    sign: str  # + or -
    stack: str
    policy: str
    effect: str
    actions: list[str]
    resources: list[str]
    principal: str
    condition: str
    widens: bool


def _covers(pattern: str, value: str) -> bool:
    return pattern == value or ("*" in pattern and not pattern.startswith("NOT ")
                                and fnmatch.fnmatchcase(value.lower(), pattern.lower()))


def _widens(atom: _Atom, sign: str, before: set[_Atom]) -> bool:
    if sign == "-":
        return atom.effect == "Deny"
    if atom.effect != "Allow":
        return False
    return not any(o.effect == "Allow" and (o.stack, o.policy, o.principal, o.condition) ==
                   (atom.stack, atom.policy, atom.principal, atom.condition)
                   and _covers(o.action, atom.action) and _covers(o.resource, atom.resource) for o in before)


def _group_atoms(sign: str, atoms: set[_Atom], before: set[_Atom]) -> list[IamChange]:
    # Regroup atoms into statements: actions sharing a resource, then resources sharing an action set.
    by_resource: dict[tuple, set[str]] = {}
    for a in atoms:
        wid = _widens(a, sign, before)
        by_resource.setdefault((a.stack, a.policy, a.effect, a.principal, a.condition, a.resource, wid),
                               set()).add(a.action)
    by_actions: dict[tuple, list[str]] = {}
    for (stack, policy, effect, principal, cond, resource, wid), actions in by_resource.items():
        by_actions.setdefault((stack, policy, effect, principal, cond, tuple(sorted(actions)), wid),
                              []).append(resource)
    return [IamChange(sign, stack, policy, effect, list(actions), sorted(res), principal, cond, wid)
            for (stack, policy, effect, principal, cond, actions, wid), res in by_actions.items()]


def iam_changes(old: dict[str, dict], new: dict[str, dict]) -> list[IamChange]:
    out = []
    for key in sorted(old.keys() | new.keys()):
        before, after = _atoms(key, old.get(key) or {}), _atoms(key, new.get(key) or {})
        out += _group_atoms("-", before - after, after) + _group_atoms("+", after - before, before)
    return sorted(out, key=lambda c: (c.stack, c.policy, c.sign == "+", c.effect, c.actions, c.resources))


# ---------------------------------------------------------------- security-group rules

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
                out |= {_rule(stack, lid, direction, r) for r in _as_list(props.get(key)) if isinstance(r, dict)}
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


# ---------------------------------------------------------------- the report

@dataclass
class Report:
    stacks: list[StackDiff]
    data_loss: list[DataLossRisk]
    iam: list[IamChange]
    network: list[SgChange]
    base: str = ""
    target: str = ""

    @property
    def has_changes(self) -> bool:
        return any(sd.status != "unchanged" for sd in self.stacks)

    @property
    def replacements(self) -> list[tuple[str, ResourceChange]]:
        return [(sd.key, rc) for sd in self.stacks for rc in sd.resources if rc.replacement]

    @property
    def permissions_widen(self) -> bool:
        return any(c.widens for c in self.iam)

    @property
    def network_widens(self) -> bool:
        return any(c.widens for c in self.network)

    @property
    def verdict(self) -> str:
        if not self.iam and not self.network:
            return "no IAM statement or security-group rule changes"
        widen = [what for what, flag in (("permissions", self.permissions_widen),
                                         ("network reach", self.network_widens)) if flag]
        if widen:
            return f"WIDENS {' and '.join(widen)}"
        return "permissions and network reach do not widen (changes only remove or narrow access)"


def diff_templates(old: dict[str, dict], new: dict[str, dict], base: str = "", target: str = "") -> Report:
    """Compare two `{"<env>/<file>": template}` maps, every stack (parent and children) on its own."""
    def order(key: str) -> tuple:
        env, _, file = key.partition("/")
        known = list(ENVIRONMENTS)
        # Environments in configuration order, the parent first within each.
        return known.index(env) if env in known else len(known), env, file != "main.json", file
    stacks = [diff_stack(*key.split("/", 1), old.get(key), new.get(key)) for key in
              sorted(old.keys() | new.keys(), key=order)]
    return Report(stacks, data_loss_risks(stacks, old), iam_changes(old, new), sg_changes(old, new), base, target)
