"""`python -m generator diff`: load the two sides, compare them with diff_templates, print the report.

Sides: base = templates/ committed at a git revision (or the templates deployed under a stack);
target = what the generator produces now (or templates/ as on disk with --worktree).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from generator import config, errors, graph
from generator.aws_facts import NESTED_STACK_TYPE
from generator.cost import review as cost_review
from generator.diff.packages import restore_local_code
from generator.diff.render import render
from generator.diff.report import Report, diff_templates
from generator.render import PARENT_FILE, render_environment

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = "templates"

FAIL_ON = ("replacement", "stateful", "security", "any")
COST_GATE = "cost>"  # --fail-on cost>USD: any environment's fixed monthly cost rises by more than USD


def fail_on_value(text: str) -> str:
    """A --fail-on value: one of FAIL_ON, or cost>USD with USD a number of dollars a month."""
    if text in FAIL_ON:
        return text
    if text.startswith(COST_GATE):
        try:
            usd = float(text.removeprefix(COST_GATE))
        except ValueError:
            usd = float("nan")
        if usd >= 0:
            return text
    raise argparse.ArgumentTypeError(f"invalid choice {config.shown(text)} (choose from {', '.join(FAIL_ON)}, "
                                     "or cost>USD such as cost>50)")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m generator diff",
        description="Review a template change: resources added, removed, changed and REPLACED (data-loss risk), "
                    "IAM statement and security-group rule changes with a widening verdict, and state machine "
                    "changes state by state. Compares templates/ at a git revision (or a deployed stack) with "
                    "what the generator produces now.",
        epilog="Exit status: 0 whether or not there are changes; 3 a --fail-on condition holds; "
               "2 bad revision, stack, environment or option.",
    )
    base = p.add_mutually_exclusive_group()
    base.add_argument("--base", default="HEAD", metavar="REV",
                      help="git revision whose committed templates/ are the old side (default: HEAD)")
    base.add_argument("--stack", metavar="NAME",
                      help="instead, the templates deployed under this parent stack and its nested stacks (boto3)")
    p.add_argument("--region", metavar="R",
                   help="region of --stack (default: the environment's configured region)")
    p.add_argument("--stack-env-override", metavar="STACK_ENV:ENV",
                   help="compare --env ENV with a stack of another environment STACK_ENV (refused otherwise)")
    p.add_argument("--drift", action="store_true",
                   help="with --stack: run drift detection on the parent and every nested stack and report the "
                        "drifted properties (expected, actual) and whether this deploy reverts them")
    p.add_argument("--worktree", action="store_true",
                   help="new side: templates/ files as they are on disk, not freshly generated")
    p.add_argument("--env", action="append", metavar="NAME",
                   help=f"limit to this environment (repeatable; default: all of {', '.join(config.ENVIRONMENTS)})")
    p.add_argument("--format", choices=("text", "markdown", "json"), default="text",
                   help="text (default; coloured on a terminal), markdown (a pull-request comment) or json")
    p.add_argument("--fail-on", action="append", type=fail_on_value, default=[], metavar="WHAT",
                   help="exit 3 when the diff holds a replacement (including 'may be replaced' and consequential "
                        "ones), a stateful resource replaced or removed (stateful), any security change (IAM "
                        "statement or security-group rule), any change at all (any), or an environment's fixed "
                        "monthly cost rising by more than USD dollars (cost>USD, e.g. cost>50); repeatable")
    args = p.parse_args(argv)
    if args.region is not None and not config.REGION_NAME.fullmatch(args.region):
        raise errors.InputError(f"invalid --region {config.shown(args.region)}; accepted: an AWS region name such "
                                "as ap-northeast-1")
    return args


# ---------------------------------------------------------------- loading

def _git(repo: Path, *args: str, stdin: bytes | None = None, failure: str = "") -> bytes:
    """git's output; any failure, git missing included, is a GitError (`failure`, else the command's error)."""
    try:
        done = subprocess.run(["git", "-C", str(repo), *args], input=stdin, capture_output=True)
    except OSError as e:
        raise errors.GitError(f"cannot run git ({e.strerror}); install git or run from a git checkout") from None
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip() or "failed"
        raise errors.GitError(failure or f"git {' '.join(args)}: {reason}")
    return done.stdout


def _git_text(repo: Path, *args: str, failure: str = "") -> str:
    return _git(repo, *args, failure=failure).decode()


def _parse(text: str | bytes, where: str) -> dict:
    """A JSON template, or a TemplateError naming where it comes from."""
    try:
        template = json.loads(text)
    except ValueError as e:
        raise errors.TemplateError(f"{where}: not valid JSON ({e})") from None
    if not isinstance(template, dict):
        raise errors.TemplateError(f"{where}: not a CloudFormation template (a JSON object)")
    return template


def load_git(rev: str, envs: list[str], repo: Path | None = None) -> dict[str, dict]:
    """`<env>/<file>` -> template for every templates/<env>/*.json committed at `rev` (default repo: REPO)."""
    repo = repo or REPO  # read at call time, so tests can point REPO at a scratch repository
    _git(repo, "rev-parse", "--git-dir", failure=f"{repo} is not in a git repository: --base needs the committed "
                                                 "templates/; run from a clone, or compare with --stack NAME")
    sha = _git_text(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}",
                    failure=f"unknown git revision {rev!r} (try a branch, tag or commit such as HEAD or main)").strip()
    paths = [p for p in _git_text(repo, "ls-tree", "-r", "--name-only", sha, "--",
                                  *(f"{TEMPLATES}/{e}/" for e in envs)).splitlines() if p.endswith(".json")]
    if not paths:
        return {}
    # One `git cat-file --batch` for all files: a process per file would dominate the run time.
    raw = _git(repo, "cat-file", "--batch", stdin="".join(f"{sha}:{p}\n" for p in paths).encode())
    out, pos = {}, 0
    for path in paths:
        header_end = raw.index(b"\n", pos)
        size = int(raw[pos:header_end].split()[2])
        out[path.removeprefix(f"{TEMPLATES}/")] = _parse(raw[header_end + 1:header_end + 1 + size],
                                                         f"{path} at {rev}")
        pos = header_end + 1 + size + 1
    return out


def load_dir(root: Path, envs: list[str]) -> dict[str, dict]:
    return {f"{env}/{p.name}": _parse(p.read_text(encoding="utf-8"), str(p))
            for env in envs for p in sorted((root / env).glob("*.json"))}


def generate(envs: list[str]) -> dict[str, dict]:
    return {f"{env}/{name}": json.loads(text)
            for env in envs for name, text in render_environment(config.get(env)).items()}


def _body(template_body: object, where: str) -> dict:
    """A deployed template: boto3 hands JSON over already parsed, YAML as text."""
    if isinstance(template_body, dict):
        return template_body
    if not isinstance(template_body, (str, bytes)):
        raise errors.TemplateError(f"{where}: not a CloudFormation template ({type(template_body).__name__})")
    try:
        return json.loads(template_body)
    except ValueError:
        pass
    import yaml  # deployed as YAML: only then pay for the imports
    from cfnlint.decode.cfn_yaml import loads

    try:
        template = loads(template_body)
    except (yaml.YAMLError, ValueError) as e:
        raise errors.TemplateError(f"{where}: neither JSON nor YAML CloudFormation ({e})") from None
    if not isinstance(template, dict):
        raise errors.TemplateError(f"{where}: not a CloudFormation template (a mapping)")
    return template


def _child_file(logical_id: str, url: object, known: dict[str, str]) -> str:
    """The repository file a nested stack comes from: as the repository's parent names it, else its URL."""
    if logical_id in known:
        return known[logical_id]
    name = url.rsplit("/", 1)[-1] if isinstance(url, str) else ""
    return name if name.endswith(".json") else f"{logical_id.removesuffix('Stack').lower()}.json"


@contextmanager
def _reading_stack(name: str, region: str):
    """Turn any AWS failure (unknown stack, no credentials, no network) into one clear AwsError."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as e:
        message = e.response["Error"].get("Message", e)
        raise errors.AwsError(f"cannot read stack {name!r} in {region}: {message}") from None
    except BotoCoreError as e:
        raise errors.AwsError(f"cannot read stack {name!r} in {region}: {e}") from None


def load_stack(name: str, region: str, env: str, known: dict[str, str],
               ids: dict[str, str] | None = None) -> dict[str, dict]:
    """`<env>/<file>` -> template for a deployed parent stack and, recursively, its nested stacks; `ids`, if
    given, receives `<env>/<file>` -> stack id (for drift detection)."""
    import boto3

    cfn = boto3.client("cloudformation", region_name=region)
    out: dict[str, dict] = {}

    def fetch(stack_id: str, file: str) -> None:
        template = _body(cfn.get_template(StackName=stack_id, TemplateStage="Original")["TemplateBody"],
                         f"the template of stack {stack_id}")
        out[f"{env}/{file}"] = template
        if ids is not None:
            ids[f"{env}/{file}"] = stack_id
        resources = template.get("Resources") or {}
        pages = cfn.get_paginator("list_stack_resources").paginate(StackName=stack_id)
        for summary in (s for page in pages for s in page["StackResourceSummaries"]):
            if summary["ResourceType"] == NESTED_STACK_TYPE and summary.get("PhysicalResourceId"):
                lid = summary["LogicalResourceId"]
                properties = resources.get(lid, {}).get("Properties") or {}
                # `known` (the repository parent's TemplateURLs) names only the parent's own children.
                child = _child_file(lid, properties.get("TemplateURL"), known if file == PARENT_FILE else {})
                # The deployed URL is where `package` uploaded the child; the child itself is compared
                # on its own, so name it as the repository does and keep packaging out of the report.
                if "TemplateURL" in properties:
                    properties["TemplateURL"] = child
                fetch(summary["PhysicalResourceId"], child)

    with _reading_stack(name, region):
        fetch(name, PARENT_FILE)
    return out


def stack_environment(name: str, region: str) -> str | None:
    """The environment a deployed parent belongs to: its Environment tag, else its description's `(env)`."""
    import boto3

    with _reading_stack(name, region):
        stack = boto3.client("cloudformation", region_name=region).describe_stacks(StackName=name)["Stacks"][0]
    return config.environment_of_stack(stack)


# ---------------------------------------------------------------- main

def failing(report: Report, fail_on: list[str]) -> list[str]:
    reasons = []
    replaced = len(report.replacements) + len(report.consequential_replacements)
    if "replacement" in fail_on and replaced:
        reasons.append(f"{replaced} resource(s) replaced or may be replaced "
                       f"({len(report.consequential_replacements)} as a consequence)")
    lost = [r for r in report.data_loss if not r.risk.startswith("updated")]
    if "stateful" in fail_on and lost:
        reasons.append(f"{len(lost)} stateful resource(s) replaced, may be replaced or removed: "
                       + ", ".join(f"{r.stack} {r.logical_id}" for r in lost[:5]) + (" ..." if len(lost) > 5 else ""))
    if "security" in fail_on and (report.iam or report.network):
        reasons.append(f"{len(report.iam)} IAM statement and {len(report.network)} security-group rule change(s)")
    if "any" in fail_on and report.has_changes:
        reasons.append("the templates change")
    for gate in (g for g in fail_on if g.startswith(COST_GATE)):
        over = cost_review.above(report.cost or [], float(gate.removeprefix(COST_GATE)))
        if over:
            reasons.append(f"fixed monthly cost rises by more than ${float(gate.removeprefix(COST_GATE)):,.2f}: "
                           + ", ".join(over))
    return reasons


def _parent_files(new: dict[str, dict], env: str) -> dict[str, str]:
    """Nested stack logical id -> the repository file of its child, as the repository's parent wires them."""
    return {lid: f"{child}.json" for lid, child in graph.nested_stacks(new.get(f"{env}/{PARENT_FILE}", {})).items()}


def load_sides(args: argparse.Namespace, ids: dict[str, str] | None = None
               ) -> tuple[dict[str, dict], dict[str, dict], str]:
    """(old, new, base label) as the arguments ask; every failure is a PipelineError. With --stack, `ids`
    receives the stack id of each deployed template."""
    wanted = {config.get(n).name for n in args.env} if args.env else set(config.ENVIRONMENTS)
    envs = [name for name in config.ENVIRONMENTS if name in wanted]
    if args.stack:
        if len(envs) > 1 and not args.env:
            found = stack_environment(args.stack, args.region or config.DEFAULT_REGION)
            if found is None:
                raise errors.InputError(f"cannot tell which environment stack {args.stack!r} is; pass --env NAME")
            envs = [found]
        elif len(envs) > 1:
            raise errors.InputError("--stack compares one environment; pass a single --env")
        else:
            check_stack_environment(args, envs[0])
        region = args.region or config.get(envs[0]).region
        new = load_dir(REPO / TEMPLATES, envs) if args.worktree else generate(envs)
        old = load_stack(args.stack, region, envs[0], _parent_files(new, envs[0]), ids)
        for note in restore_local_code(old, new):  # packaged functions: the S3 location is not a change
            print(f"code: {note}", file=sys.stderr)
        args.region = region  # drift detection runs where the stack was read
        return old, new, f"stack {args.stack} ({region})"
    new = load_dir(REPO / TEMPLATES, envs) if args.worktree else generate(envs)
    old = load_git(args.base, envs)
    return old, new, f"{args.base} ({_git_text(REPO, 'rev-parse', '--short', args.base + '^{commit}').strip()})"


def check_stack_environment(args: argparse.Namespace, env: str) -> None:
    """--env dev against the prod stack compares the wrong things: refused unless an override names both."""
    found = stack_environment(args.stack, args.region or config.get(env).region)
    if found is None or found == env or args.stack_env_override == f"{found}:{env}":
        return
    raise errors.InputError(f"stack {args.stack} belongs to environment {found}, not {env}: check --stack and --env, "
                            f"or pass --stack-env-override {found}:{env} to compare them anyway")


def add_drift(report: Report, region: str, stack: str, ids: dict[str, str]) -> None:
    """Run drift detection on every stack read and fold the drifted resources into the report."""
    import boto3

    from generator.diff.drift import detect_drift, mark_reverted, unsupported

    touched = {(sd.key, rc.logical_id) for sd in report.stacks for rc in sd.resources if rc.action != "added"}
    touched |= {(c.stack, c.logical_id) for c in report.consequences}
    cfn = boto3.client("cloudformation", region_name=region)
    with _reading_stack(stack, region):
        try:
            drifts = detect_drift(cfn, ids)
        except Exception as e:
            if not unsupported(e):
                raise
            # The report says nothing of drift (JSON: "drift": null, not checked); the rest of the diff stands.
            print(f"drift: not checked: {cfn.meta.endpoint_url} does not implement drift detection "
                  f"({type(e).__name__}: {errors.one_line(e, 120)})", file=sys.stderr)
            return
    report.drift = mark_reverted(drifts, touched)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    ids: dict[str, str] = {}
    try:
        if args.drift and not args.stack:
            raise errors.InputError("--drift needs --stack NAME (drift is a property of a deployed stack)")
        old, new, base = load_sides(args, ids)
        report = diff_templates(old, new, base, f"{TEMPLATES}/ on disk" if args.worktree else "generated now")
        if args.drift:
            add_drift(report, args.region, args.stack, ids)
        report.cost = cost_review.cost_changes(old, new)
    except errors.PipelineError as e:  # config, limits, git, AWS, a template that does not parse
        print(f"error: {errors.one_line(e)}", file=sys.stderr)
        return errors.EXIT_USAGE
    colour = args.format == "text" and sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    sys.stdout.write(render(report, args.format, colour))
    reasons = failing(report, args.fail_on)
    if reasons:
        print(f"--fail-on: {'; '.join(reasons)}", file=sys.stderr)
        return errors.EXIT_FAIL_ON
    return errors.EXIT_OK
