"""The report: per stack the resources, parameters and outputs that change, the data-loss risks, and
the IAM and security-group changes, assembled by `diff_templates`."""

from __future__ import annotations

from dataclasses import dataclass, field

from generator.aws_facts import NESTED_STACK_TYPE, RETAINING_POLICIES, STATEFUL_TYPES
from generator.config import ENVIRONMENTS
from generator.diff.blast import Consequence, Node, blast_radius
from generator.diff.iam import IamChange, iam_changes
from generator.diff.network import SgChange, sg_changes
from generator.diff.replacement import REPLACED, replacement_for, worst
from generator.diff.values import MISSING, Change, diff_values, path_text, ref_name
from generator.diff.workflow import (
    STATE_MACHINE_TYPE,
    WorkflowDiff,
    definition_of,
    diff_definitions,
    without_definition,
)

# Resource attributes compared besides Properties (Type is handled on its own).
ATTRIBUTES = ("Condition", "CreationPolicy", "DeletionPolicy", "DependsOn", "Metadata", "UpdatePolicy",
              "UpdateReplacePolicy")


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
            old_props, new_props = without_definition(old_props), without_definition(new_props)
    changes = [Change(path_text(("Properties", *p)), a, b, replacement_for(rtype, p))
               for p, a, b in diff_values(old_props, new_props)]
    for attr in ATTRIBUTES:
        changes += [Change(path_text((attr, *p)), a, b)
                    for p, a, b in diff_values(old.get(attr, MISSING), new.get(attr, MISSING))]
    return changes, workflow


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
        scored = sorted((-_similarity(old[r], new[a]), r, a) for r in rs for a in ads)
        used: set[str] = set()
        for score, r, a in scored:
            if r not in used and a not in used and (lone or -score >= 0.5):
                pairs.append((r, a))
                used |= {r, a}
    return pairs


# At least this share of property values equal makes a removal plus an addition a probable rename.
PROBABLE_RENAME = 0.7


def _leaves(v: object) -> int:
    if isinstance(v, dict):
        return sum(map(_leaves, v.values()))
    return sum(map(_leaves, v)) if isinstance(v, list) else 1


def _value_similarity(a: dict, b: dict) -> float:
    """The share of property leaf values (a tag value, one list item ...) that are equal on both sides."""
    pa, pb = a.get("Properties") or {}, b.get("Properties") or {}
    total = max(_leaves(pa), _leaves(pb), 1)
    return max(0.0, 1 - len(diff_values(pa, pb)) / total)


def _rename_note(old: dict, new: dict) -> str:
    similarity = _value_similarity(old, new)
    if similarity < PROBABLE_RENAME:
        return ""
    return (f": probable rename ({similarity:.0%} of property values equal); CloudFormation replaces it, "
            "a stack refactor (aws cloudformation create-stack-refactor) moves it to the new logical ID and keeps it")


def diff_resources(old: dict, new: dict) -> list[ResourceChange]:
    out = []
    removed = sorted(old.keys() - new.keys())
    added = sorted(new.keys() - old.keys())
    renames = _pair_renames(old, new, removed, added)
    for r, a in renames:
        changes, workflow = _resource_changes(new[a].get("Type", "?"), old[r], new[a])
        out.append(ResourceChange(a, new[a].get("Type", "?"), "renamed", REPLACED,
                                  f"logical ID changed from {r}{_rename_note(old[r], new[a])}", r, changes, workflow))
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
        old_rest, new_rest = ({k: v for k, v in t.items() if k not in ("Resources", "Parameters", "Outputs")}
                              for t in (old, new))
        sd.template = [Change(path_text(p), a, b) for p, a, b in diff_values(old_rest, new_rest)]
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
    chain: list[str] = field(default_factory=list)  # for a consequence: how the change reaches it


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


# ---------------------------------------------------------------- exports

@dataclass
class ExportChange:
    """An exported Output removed or exported under another name: a stack importing it breaks (and
    CloudFormation refuses the update while one does)."""
    stack: str  # <env>/<file>
    output: str
    export: str  # the old export name
    action: str  # removed (the output or its Export), renamed
    new_export: str = ""


def _export_names(template: dict) -> dict[str, str]:
    """Output name -> export name (intrinsics in short form) for every exported output."""
    return {name: ref_name(o["Export"]["Name"]) for name, o in (template.get("Outputs") or {}).items()
            if isinstance(o, dict) and isinstance(o.get("Export"), dict) and "Name" in o["Export"]}


def export_changes(old: dict[str, dict], new: dict[str, dict]) -> list[ExportChange]:
    out = []
    for key in old:
        before, after = _export_names(old[key]), _export_names(new.get(key) or {})
        still = set(after.values())
        for output, name in sorted(before.items()):
            if name in still:
                continue  # exported again (maybe by another output): importers keep working
            action = "renamed" if output in after else "removed"
            out.append(ExportChange(key, output, name, action, after.get(output, "")))
    return out


# ---------------------------------------------------------------- the report

@dataclass
class Report:
    stacks: list[StackDiff]
    data_loss: list[DataLossRisk]
    iam: list[IamChange]
    network: list[SgChange]
    base: str = ""
    target: str = ""
    consequences: list[Consequence] = field(default_factory=list)
    exports: list[ExportChange] = field(default_factory=list)
    drift: list | None = None  # list[drift.Drift] with --drift, else None (not checked)
    cost: list | None = None  # list[generator.cost.review.CostChange] as the CLI computes it, else None

    @property
    def has_changes(self) -> bool:
        return any(sd.status != "unchanged" for sd in self.stacks)

    @property
    def replacements(self) -> list[tuple[str, ResourceChange]]:
        return [(sd.key, rc) for sd in self.stacks for rc in sd.resources if rc.replacement]

    @property
    def consequential_replacements(self) -> list[Consequence]:
        return [c for c in self.consequences if c.effect != "updated"]

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


def _env_and_file(key: str) -> tuple[str, str]:
    env, _, file = key.partition("/")
    return env, file


def diff_templates(old: dict[str, dict], new: dict[str, dict], base: str = "", target: str = "") -> Report:
    """Compare two `{"<env>/<file>": template}` maps, every stack (parent and children) on its own."""
    def order(key: str) -> tuple:
        env, _, file = key.partition("/")
        known = list(ENVIRONMENTS)
        # Environments in configuration order, the parent first within each.
        return known.index(env) if env in known else len(known), env, file != "main.json", file
    stacks = [diff_stack(*_env_and_file(key), old.get(key), new.get(key)) for key in
              sorted(old.keys() | new.keys(), key=order)]
    consequences = blast_radius(new, _seeds(stacks))
    risks = data_loss_risks(stacks, old) + consequence_risks(consequences, old)
    return Report(stacks, risks, iam_changes(old, new), sg_changes(old, new), base, target, consequences,
                  export_changes(old, new))


def _seeds(stacks: list[StackDiff]) -> dict[Node, tuple[str, str]]:
    """The directly replaced resources (not nested stacks: their children are compared on their own), each
    with what replaces it: the create-only properties, the logical ID or the type."""
    out = {}
    for sd in stacks:
        for rc in sd.resources:
            if rc.replacement and rc.action in ("changed", "renamed") and rc.type != NESTED_STACK_TYPE:
                paths = sorted({c.path.removeprefix("Properties.") for c in rc.changes
                                if c.replacement == rc.replacement})
                why = f"logical ID (was {rc.old_logical_id})" if rc.action == "renamed" else ", ".join(paths)
                out[("resource", sd.key, rc.logical_id)] = (rc.replacement, why or rc.reason)
    return out


def consequence_risks(consequences: list[Consequence], old: dict[str, dict]) -> list[DataLossRisk]:
    """Every stateful resource a replacement reaches: replaced (data loss) or updated (interruption)."""
    out = []
    for c in consequences:
        if c.type not in STATEFUL_TYPES:
            continue
        before = ((old.get(c.stack) or {}).get("Resources") or {}).get(c.logical_id, {})
        risk = c.effect if c.effect != "updated" else "updated (interruption)"
        kept = _kept(before, "UpdateReplacePolicy") if c.effect != "updated" else ""
        out.append(DataLossRisk(c.stack, c.logical_id, c.type, risk, f"consequence: {c.chain_text}", kept, c.chain))
    return out
