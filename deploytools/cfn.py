"""What deploy.sh needs from CloudFormation beyond single aws CLI calls (boto3, same credentials/endpoint).

    python -m deploytools.cfn params      --template T [--param K=V ...] --out FILE
    python -m deploytools.cfn stack-status --stack N
    python -m deploytools.cfn check-env   --stack N --env E [--override STACK_ENV:E]   refuse another env's stack
    python -m deploytools.cfn wait-change-set --change-set ARN      exit 0 ready, 3 no changes, 1 failed
    python -m deploytools.cfn summary     --change-set ARN           per-stack added/modified/removed/replaced
    python -m deploytools.cfn execute     --change-set ARN           execute, follow events, outputs | root cause
    python -m deploytools.cfn retained    --stack N                  resources a delete keeps
    python -m deploytools.cfn delete      --stack N                  delete, follow events, list what was kept

Exit status: 0 success, 1 failure (a reason is printed), 2 bad input or an AWS error (one line), 3 change set
has no changes, 70 internal error (traceback in a log file), 130 interrupted (the line says the stack's state).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from generator import errors
from generator.aws_facts import NESTED_STACK_TYPE, RETAINING_POLICIES, STATEFUL_TYPES

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NO_CHANGES = errors.EXIT_OK, 1, errors.EXIT_USAGE, 3
NO_CHANGES_REASONS = ("didn't contain changes", "No updates are to be performed")
POLL_S = float(os.environ.get("DEPLOY_POLL_SECONDS", "5"))
STACK_TYPE = NESTED_STACK_TYPE

# Failures that only echo another one (CloudFormation cancels siblings and fails the parents).
ECHO_REASONS = ("Resource creation cancelled", "Resource update cancelled", "Embedded stack",
                "The following resource(s) failed", "Stack creation time exceeded")


def client() -> Any:
    import boto3

    return boto3.client("cloudformation")


def _color(text: str, code: str) -> str:
    return f"\033[{code}m{text}\033[0m" if sys.stdout.isatty() and not os.environ.get("NO_COLOR") else text


def warn(text: str) -> str:
    return _color(text, "1;31")


# ---------------------------------------------------------------------------------------------------------
# Parameters


class ParameterError(errors.InputError):
    """A --param value is malformed or breaks the template's own constraints."""


def parse_params(pairs: Iterable[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ParameterError(f"--param {pair!r}: expected Key=Value")
        params[key] = value
    return params


def check_params(template: dict[str, Any], params: dict[str, str]) -> list[str]:
    """The template's own constraints, checked before anything is sent (CloudFormation would reject the
    change set, moto would not): unknown keys, AllowedPattern, AllowedValues, lengths, missing values."""
    declared = template.get("Parameters", {})
    problems = []
    for key in sorted(params.keys() - declared.keys()):
        problems.append(f"{key}: no such parameter (the template declares: {', '.join(sorted(declared))})")
    for key, spec in sorted(declared.items()):
        if key not in params:
            if "Default" not in spec:
                problems.append(f"{key}: required (no default); pass --param {key}=VALUE")
            continue
        value = params[key]
        hint = spec.get("ConstraintDescription")
        if "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], value):
            problems.append(f"{key}={value!r}: must match {spec['AllowedPattern']}" + (f" ({hint})" if hint else ""))
        if "AllowedValues" in spec and value not in [str(v) for v in spec["AllowedValues"]]:
            problems.append(f"{key}={value!r}: must be one of {', '.join(map(str, spec['AllowedValues']))}")
        if "MinLength" in spec and len(value) < int(spec["MinLength"]):
            problems.append(f"{key}: at least {spec['MinLength']} characters")
        if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
            problems.append(f"{key}: at most {spec['MaxLength']} characters")
    return problems


# ---------------------------------------------------------------------------------------------------------
# Stacks and change sets


def describe_stack(cfn: Any, stack: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    try:
        return cfn.describe_stacks(StackName=stack)["Stacks"][0]
    except ClientError as e:
        if "does not exist" in str(e):
            return None
        raise


def stack_status(cfn: Any, stack: str) -> str | None:
    described = describe_stack(cfn, stack)
    return described["StackStatus"] if described else None


def check_stack_environment(cfn: Any, stack: str, env: str, override: str | None = None) -> str:
    """Refuse to deploy one environment's templates onto another environment's stack.

    `override` must name both sides (`<stack's env>:<env>`), so that a mismatch is never waved through by a
    flag that means "whatever". Returns what was found, for the log line.
    """
    from generator.config import environment_of_stack

    described = describe_stack(cfn, stack)
    if described is None:
        return f"stack {stack} does not exist yet: it will be created for {env}"
    found = environment_of_stack(described)
    if found is None:
        return f"stack {stack} names no environment (no Environment tag); deploying {env}"
    if found == env or override == f"{found}:{env}":
        return f"stack {stack} belongs to {found}" + ("" if found == env else f"; deploying {env} over it (override)")
    raise errors.InputError(
        f"stack {stack} belongs to environment {found}, not {env}: deploying {env}'s templates would replace "
        f"{found}'s resources; check --env and --stack-name, or pass --stack-env-override {found}:{env} "
        "if that is really meant")


def wait_change_set(cfn: Any, change_set: str, timeout_s: float = 1800) -> tuple[int, str]:
    deadline = time.monotonic() + timeout_s
    while True:
        cs = cfn.describe_change_set(ChangeSetName=change_set)
        status, reason = cs["Status"], cs.get("StatusReason", "")
        if status == "CREATE_COMPLETE":
            return EXIT_OK, ""
        if status == "FAILED":
            if any(r in reason for r in NO_CHANGES_REASONS):
                return EXIT_NO_CHANGES, reason
            return EXIT_FAILED, reason
        if time.monotonic() > deadline:
            return EXIT_FAILED, f"change set still {status} after {timeout_s:.0f}s"
        time.sleep(min(POLL_S, 2))


def change_set_pages(cfn: Any, change_set: str) -> Iterable[dict[str, Any]]:
    kwargs = {"ChangeSetName": change_set}
    while True:
        page = cfn.describe_change_set(**kwargs)
        yield page
        if not page.get("NextToken"):
            return
        kwargs["NextToken"] = page["NextToken"]


@dataclass
class StackChanges:
    label: str
    added: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    stateful: list[str] = field(default_factory=list)  # replaced or removed stateful resources


def collect_changes(cfn: Any, change_set: str, label: str) -> list[StackChanges]:
    """One StackChanges per stack, the parent first, following nested change sets depth-first."""
    mine = StackChanges(label)
    result = [mine]
    for page in change_set_pages(cfn, change_set):
        for change in page.get("Changes", []):
            rc = change.get("ResourceChange", {})
            action, rtype = rc.get("Action"), rc.get("ResourceType", "")
            name = f"{rc.get('LogicalResourceId')} ({rtype})"
            replacement = rc.get("Replacement")
            if action == "Add":
                mine.added.append(name)
            elif action == "Remove":
                mine.removed.append(name)
                if rtype in STATEFUL_TYPES:
                    mine.stateful.append(f"{name} is REMOVED")
            elif action in ("Modify", "Dynamic"):
                if replacement in ("True", "Conditional"):
                    what = "REPLACED" if replacement == "True" else "MAY BE REPLACED"
                    mine.replaced.append(name + ("" if replacement == "True" else " (conditional)"))
                    if rtype in STATEFUL_TYPES:
                        mine.stateful.append(f"{name} is {what}")
                else:
                    mine.modified.append(name)
            if rtype == STACK_TYPE and rc.get("ChangeSetId"):
                result += collect_changes(cfn, rc["ChangeSetId"], f"{label}/{rc.get('LogicalResourceId')}")
    return result


def format_summary(stacks: list[StackChanges]) -> str:
    lines = []
    for s in stacks:
        counts = f"+{len(s.added)} ~{len(s.modified)} -{len(s.removed)} replaced {len(s.replaced)}"
        lines.append(f"{s.label}: {counts}")
        for sign, names in (("+", s.added), ("~", s.modified), ("-", s.removed), ("!", s.replaced)):
            lines += [f"    {sign} {n}" for n in sorted(names)]
    stateful = [f"{s.label}: {x}" for s in stacks for x in s.stateful]
    if stateful:
        lines.append(warn("DATA AT RISK: stateful resources replaced or removed (their data does not follow):"))
        lines += [warn(f"  !! {x}") for x in stateful]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# Events


TERMINAL = re.compile(r"^(?!.*IN_PROGRESS$).*(_COMPLETE|_FAILED)$")


@dataclass
class Watcher:
    """Follows the events of a stack and of every nested stack it reveals, newer than `since`."""

    cfn: Any
    root: str  # stack id
    since: dt.datetime
    out: Any = sys.stdout
    stacks: dict[str, str] = field(default_factory=dict)  # stack id or name -> label
    seen: set[str] = field(default_factory=set)
    events: list[dict[str, Any]] = field(default_factory=list)
    latest: dict[tuple[str, str], str] = field(default_factory=dict)  # (stack, logical id) -> status

    def __post_init__(self) -> None:
        self.stacks.setdefault(self.root, self.cfn.describe_stacks(StackName=self.root)["Stacks"][0]["StackName"])

    def finished(self) -> int:
        return sum(1 for (stack, _), status in self.latest.items()
                   if TERMINAL.match(status) and not (stack == self.root and _ == self.stacks[self.root]))

    def _new_events(self, stack: str) -> list[dict[str, Any]]:
        from botocore.exceptions import ClientError

        new: list[dict[str, Any]] = []
        kwargs = {"StackName": stack}
        try:
            while True:
                page = self.cfn.describe_stack_events(**kwargs)
                batch = page.get("StackEvents", [])
                fresh = [e for e in batch if e["Timestamp"] >= self.since and e["EventId"] not in self.seen]
                new += fresh
                if not page.get("NextToken") or len(fresh) < len(batch):
                    break
                kwargs["NextToken"] = page["NextToken"]
        except ClientError:
            return []  # a nested stack that is gone (deleted, or renamed by a replacement)
        return new

    def poll(self) -> None:
        """Print the new events of every known stack; repeat while the events reveal more nested stacks."""
        polled: set[str] = set()
        while set(self.stacks) - polled:
            todo = [s for s in self.stacks if s not in polled]
            polled.update(todo)
            self._show([e for stack in todo for e in self._new_events(stack)])

    def _show(self, new: list[dict[str, Any]]) -> None:
        for e in sorted(new, key=lambda e: e["Timestamp"]):
            self.seen.add(e["EventId"])
            self.events.append(e)
            label = self.stacks.get(e["StackId"]) or self.stacks.get(e["StackName"]) or e["StackName"]
            self.latest[(e["StackId"], e["LogicalResourceId"])] = e["ResourceStatus"]
            physical = e.get("PhysicalResourceId") or ""
            if e["ResourceType"] == STACK_TYPE and physical and physical not in (e["StackId"], e["StackName"]):
                self.stacks.setdefault(physical, f"{label}/{e['LogicalResourceId']}")
            status = e["ResourceStatus"]
            shown = warn(status) if status.endswith("FAILED") else status
            reason = f"  {e['ResourceStatusReason']}" if e.get("ResourceStatusReason") else ""
            print(f"{e['Timestamp']:%H:%M:%S} [{self.finished():3d} done] {label:<28} "
                  f"{e['LogicalResourceId']:<32} {e['ResourceType']:<36} {shown}{reason}", file=self.out,
                  flush=True)

    def follow(self, timeout_s: float = 4 * 3600) -> str:
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.root_status()
            self.poll()
            if status is None or TERMINAL.match(status):
                return status or "DELETE_COMPLETE"
            if time.monotonic() > deadline:
                return status
            time.sleep(POLL_S)

    def root_status(self) -> str | None:
        return stack_status(self.cfn, self.root)


def root_causes(events: list[dict[str, Any]], limit: int = 5) -> list[dict[str, Any]]:
    """The first failures, in time order, that are not echoes of another failure."""
    failed = sorted((e for e in events if e["ResourceStatus"].endswith("_FAILED")), key=lambda e: e["Timestamp"])
    own = [e for e in failed if not any(r in (e.get("ResourceStatusReason") or "") for r in ECHO_REASONS)]
    causes, reasons = [], set()
    for e in own or failed:
        if e.get("ResourceStatusReason") not in reasons:  # a stack failing with its resource's reason
            reasons.add(e.get("ResourceStatusReason"))
            causes.append(e)
    return causes[:limit]


def format_root_causes(causes: list[dict[str, Any]], labels: dict[str, str]) -> str:
    if not causes:
        return "no failed resource event was recorded; see the stack events in the console"
    lines = ["root cause (first failed resources):"]
    for e in causes:
        label = labels.get(e["StackId"]) or labels.get(e["StackName"]) or e["StackName"]
        lines.append(warn(f"  {label} {e['LogicalResourceId']} ({e['ResourceType']}) {e['ResourceStatus']}: "
                          f"{e.get('ResourceStatusReason') or 'no reason given'}"))
    return "\n".join(lines)


def format_outputs(cfn: Any, stack: str) -> str:
    outputs = cfn.describe_stacks(StackName=stack)["Stacks"][0].get("Outputs") or []
    if not outputs:
        return "outputs: none"
    width = max(len(o["OutputKey"]) for o in outputs)
    return "outputs:\n" + "\n".join(f"  {o['OutputKey']:<{width}}  {o['OutputValue']}"
                                    for o in sorted(outputs, key=lambda o: o["OutputKey"]))


# ---------------------------------------------------------------------------------------------------------
# Retained resources


def nested_stacks(cfn: Any, stack: str, label: str) -> list[tuple[str, str]]:
    """(stack id or name, label) of the stack and every nested stack below it."""
    found = [(stack, label)]
    for r in list_resources(cfn, stack):
        if r["ResourceType"] == STACK_TYPE and r.get("PhysicalResourceId"):
            found += nested_stacks(cfn, r["PhysicalResourceId"], f"{label}/{r['LogicalResourceId']}")
    return found


def list_resources(cfn: Any, stack: str) -> list[dict[str, Any]]:
    resources, kwargs = [], {"StackName": stack}
    while True:
        page = cfn.list_stack_resources(**kwargs)
        resources += page.get("StackResourceSummaries", [])
        if not page.get("NextToken"):
            return resources
        kwargs["NextToken"] = page["NextToken"]


def parse_template(body: str | dict[str, Any]) -> dict[str, Any]:
    """GetTemplate's body: a dict when it was JSON, else text (`package` uploads nested templates as YAML)."""
    if not isinstance(body, str):
        return body
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    # Short-form intrinsics (!Ref x) become their long form ({"Ref": x}); only the structure matters here.
    Loader.add_multi_constructor("!", lambda loader, suffix, node: {
        "Ref" if suffix == "Ref" else f"Fn::{suffix}": (
            loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode) else
            loader.construct_sequence(node) if isinstance(node, yaml.SequenceNode) else
            loader.construct_mapping(node))})
    try:
        parsed = yaml.load(body, Loader=Loader) or {}
    except yaml.YAMLError as e:
        raise errors.TemplateError(f"a deployed template is not valid YAML or JSON: {e}") from None
    if not isinstance(parsed, dict):
        raise errors.TemplateError(f"a deployed template is not a CloudFormation object but {type(parsed).__name__}")
    return parsed


def retained_resources(cfn: Any, stack: str, label: str | None = None) -> list[str]:
    kept = []
    for sid, stack_label in nested_stacks(cfn, stack, label or stack):
        body = parse_template(cfn.get_template(StackName=sid)["TemplateBody"])
        physical = {r["LogicalResourceId"]: r.get("PhysicalResourceId", "") for r in list_resources(cfn, sid)}
        for name, res in sorted(body.get("Resources", {}).items()):
            policy = res.get("DeletionPolicy")
            if policy in RETAINING_POLICIES and name in physical:
                what = "a final snapshot is kept" if policy == "Snapshot" else "kept"
                kept.append(f"{stack_label} {name} ({res['Type']}) {physical[name]}: {what}")
    return kept


# ---------------------------------------------------------------------------------------------------------
# Commands


def read_template(path: str) -> dict[str, Any]:
    try:
        body = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise errors.TemplateError(f"cannot read template {path}: {e.strerror}") from None
    except (ValueError, RecursionError) as e:
        raise errors.TemplateError(f"template {path} is not valid JSON: {errors.one_line(e, 200)}") from None
    if not isinstance(body, dict):
        raise errors.TemplateError(f"template {path} is not a CloudFormation object")
    return body


def cmd_params(a: argparse.Namespace) -> int:
    template = read_template(a.template)
    params = parse_params(a.param)
    problems = check_params(template, params)
    if problems:
        raise ParameterError(f"bad parameter(s), nothing was deployed: {'; '.join(problems)}")
    Path(a.out).write_text(json.dumps([{"ParameterKey": k, "ParameterValue": v}
                                       for k, v in sorted(params.items())], indent=2) + "\n")
    return EXIT_OK


def cmd_check_env(a: argparse.Namespace) -> int:
    print(check_stack_environment(client(), a.stack, a.env, a.override))
    return EXIT_OK


def cmd_stack_status(a: argparse.Namespace) -> int:
    print(stack_status(client(), a.stack) or "NONE")
    return EXIT_OK


def cmd_wait_change_set(a: argparse.Namespace) -> int:
    code, reason = wait_change_set(client(), a.change_set)
    if code == EXIT_FAILED:
        print(f"error: the change set failed: {reason}", file=sys.stderr)
    return code


def cmd_summary(a: argparse.Namespace) -> int:
    cfn = client()
    cs = cfn.describe_change_set(ChangeSetName=a.change_set)
    print(f"change set {cs['ChangeSetName']} for stack {cs['StackName']}:")
    print(format_summary(collect_changes(cfn, a.change_set, cs["StackName"])))
    return EXIT_OK


def cmd_execute(a: argparse.Namespace) -> int:
    cfn = client()
    cs = cfn.describe_change_set(ChangeSetName=a.change_set)
    watcher = Watcher(cfn, cs["StackId"], since=cs["CreationTime"])
    status = follow_or_explain(watcher, "the deploy", "run ./deploy.sh again once it has finished",
                               start=lambda: cfn.execute_change_set(ChangeSetName=a.change_set))
    if status in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        print(f"{watcher.stacks[watcher.root]}: {status} ({watcher.finished()} resources finished)")
        print(format_outputs(cfn, watcher.root))
        return EXIT_OK
    print(warn(f"{watcher.stacks[watcher.root]}: {status}: the deploy failed"), file=sys.stderr)
    print(format_root_causes(root_causes(watcher.events), watcher.stacks), file=sys.stderr)
    left = left_behind(watcher)
    if left:
        print(warn(f"the rollback could not remove {len(left)} resource(s); they still exist:"), file=sys.stderr)
        print("\n".join(f"  {x}" for x in left), file=sys.stderr)
        print(f"remove what blocks them, then ./deploy.sh --delete --stack-name {watcher.stacks[watcher.root]}",
              file=sys.stderr)
    elif status.endswith("ROLLBACK_COMPLETE"):
        print("the stack was rolled back: nothing is half-deployed", file=sys.stderr)
    elif status.endswith("ROLLBACK_FAILED"):
        print("the rollback failed: resources are left; see the stack's events", file=sys.stderr)
    return EXIT_FAILED


def left_behind(watcher: Watcher) -> list[str]:
    """Resources whose last event is DELETE_FAILED: what a rollback (or delete) could not remove."""
    last: dict[tuple[str, str], dict[str, Any]] = {}
    physical: dict[tuple[str, str], str] = {}  # a failed delete's event may not repeat the physical id
    for e in sorted(watcher.events, key=lambda e: e["Timestamp"]):
        key = (e["StackId"], e["LogicalResourceId"])
        last[key] = e
        physical[key] = e.get("PhysicalResourceId") or physical.get(key, "")
    return [f"{watcher.stacks.get(key[0], e['StackName'])} {key[1]} ({e['ResourceType']}) {physical[key]}: "
            f"{e.get('ResourceStatusReason') or 'no reason given'}"
            for key, e in last.items() if e["ResourceStatus"] == "DELETE_FAILED"]


def follow_or_explain(watcher: Watcher, what: str, next_step: str, start: Any = None) -> str:
    """Start (the call may block: moto works inside it), follow the events; on Ctrl-C say in one line what state
    the stack is in and what to run next."""
    try:
        if start:
            start()
        return watcher.follow()
    except KeyboardInterrupt:
        name = watcher.stacks[watcher.root]
        try:
            status = stack_status(watcher.cfn, watcher.root) or "gone"
        except Exception:  # the line below must be printed whatever the API does now
            status = "unknown (could not be read)"
        raise errors.Interrupted(f"stopped following {what}: stack {name} is {status} and CloudFormation carries on "
                          f"without deploy.sh; watch it with `aws cloudformation describe-stacks --stack-name "
                          f"{name}`, then {next_step}") from None


def cmd_retained(a: argparse.Namespace) -> int:
    kept = retained_resources(client(), a.stack)
    print("retained after delete (DeletionPolicy):" if kept else "nothing is retained: every resource is deleted")
    print("\n".join(f"  {k}" for k in kept)) if kept else None
    return EXIT_OK


def cmd_delete(a: argparse.Namespace) -> int:
    cfn = client()
    stack = cfn.describe_stacks(StackName=a.stack)["Stacks"][0]
    kept = retained_resources(cfn, stack["StackId"], stack["StackName"])
    last = cfn.describe_stack_events(StackName=stack["StackId"])["StackEvents"]
    since = max((e["Timestamp"] for e in last), default=dt.datetime.now(dt.timezone.utc))
    watcher = Watcher(cfn, stack["StackId"], since=since)
    watcher.seen.update(e["EventId"] for e in last)
    watcher.poll()  # learn the nested stacks before they go
    for sid, label in nested_stacks(cfn, stack["StackId"], stack["StackName"])[1:]:
        watcher.stacks.setdefault(sid, label)
    status = follow_or_explain(watcher, "the delete", "run ./deploy.sh --delete again if it fails",
                               start=lambda: cfn.delete_stack(StackName=stack["StackId"]))
    if status != "DELETE_COMPLETE":
        print(warn(f"{stack['StackName']}: {status}"), file=sys.stderr)
        print(format_root_causes(root_causes(watcher.events), watcher.stacks), file=sys.stderr)
        return EXIT_FAILED
    print(f"{stack['StackName']}: DELETE_COMPLETE")
    print("retained (still exist, delete them by hand if they must go):" if kept else "nothing was retained")
    print("\n".join(f"  {k}" for k in kept)) if kept else None
    return EXIT_OK


def command_parser(module: str, doc: str | None) -> tuple[argparse.ArgumentParser, Any]:
    """`python -m <module>` with subcommands, its docstring as the help (deploytools' command lines)."""
    p = argparse.ArgumentParser(prog=f"python -m {module}", description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    return p, p.add_subparsers(dest="command", required=True)


def _main(argv: list[str]) -> int:
    p, sub = command_parser("deploytools.cfn", __doc__)
    s = sub.add_parser("params")
    s.add_argument("--template", required=True)
    s.add_argument("--param", action="append", default=[])
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_params)
    s = sub.add_parser("check-env")
    s.add_argument("--stack", required=True)
    s.add_argument("--env", required=True)
    s.add_argument("--override", metavar="STACK_ENV:ENV")
    s.set_defaults(func=cmd_check_env)
    for name, func in (("stack-status", cmd_stack_status), ("retained", cmd_retained), ("delete", cmd_delete)):
        s = sub.add_parser(name)
        s.add_argument("--stack", required=True)
        s.set_defaults(func=func)
    for name, func in (("wait-change-set", cmd_wait_change_set), ("summary", cmd_summary),
                       ("execute", cmd_execute)):
        s = sub.add_parser(name)
        s.add_argument("--change-set", required=True)
        s.set_defaults(func=func)
    a = p.parse_args(argv)
    return aws_errors_as_pipeline_errors(a.func, a)


def aws_errors_as_pipeline_errors(func: Any, a: argparse.Namespace) -> int:
    """botocore's failures (credentials, region, endpoint, API errors) are the user's to fix: one line."""
    from botocore.exceptions import BotoCoreError, ClientError, ConnectionClosedError, EndpointConnectionError

    try:
        return func(a)
    except ClientError as e:
        error = e.response.get("Error", {})
        raise errors.AwsError(f"{e.operation_name}: {error.get('Code', 'error')}: {error.get('Message', e)}") from None
    except (EndpointConnectionError, ConnectionClosedError) as e:  # the endpoint went away, even mid-call
        raise errors.AwsError(f"cannot reach {e.kwargs.get('endpoint_url', 'the AWS endpoint')}; with --local the "
                              "emulator was stopped and its stacks are gone (run ./deploy.sh --local again), "
                              "else check the network and --region") from None
    except BotoCoreError as e:
        raise errors.AwsError(str(e)) from None


def main(argv: list[str] | None = None) -> int:
    return errors.run(_main, sys.argv[1:] if argv is None else argv, "deploytools.cfn",
                      interrupted="CloudFormation carries on with any request already sent (a change set being "
                                  "created, a stack operation); see the stack's events")


if __name__ == "__main__":
    sys.exit(main())
