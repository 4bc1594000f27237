"""The project's own security and reliability rules, over every environment's templates.

Each rule (see common.Rule) has an id (VP1xx IAM, VP2xx network, VP3xx encryption, VP4xx data safety, VP5xx
data and secret privilege, VP6xx operations: alarms and the dashboard,
VP7xx access), one line saying what it enforces, the
AWS page it rests on, and one good and one bad fixture under tests/fixtures/rules/<id>/. Rules read templates
generically, by resource type and property, following the parent's wiring through generator.graph, so a tier
added later is covered without touching them.

    python -m generator rules [--templates DIR] [--list]
and `python -m generator --check` runs them over what it generates.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from generator.errors import EXIT_OK, EXIT_STALE, InputError, TemplateError
from generator.rules import access, data_safety, encryption, iam, network, operations, privilege
from generator.rules.common import Rule, Templates

FAMILIES = (iam, network, encryption, data_safety, privilege, operations, access)
RULES: tuple[Rule, ...] = tuple(sorted((v for family in FAMILIES for v in vars(family).values()
                                        if isinstance(v, Rule)), key=lambda r: r.id))
DEFAULT_TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def run(templates: Templates, rules: tuple[Rule, ...] = RULES) -> list[str]:
    """Every finding of every rule, as "<rule id> <env>/<template>.json <resource>: <what is wrong>"."""
    return [f"{r.id} {finding}" for r in rules for finding in r(templates)]


def parse_rendered(rendered: dict[str, dict[str, str]]) -> dict[str, dict[str, dict]]:
    """env -> template name -> template, from env -> file name -> JSON text (as render_environment gives it)."""
    return {env: {name.removesuffix(".json"): json.loads(text) for name, text in files.items()}
            for env, files in rendered.items()}


def read_templates(directory: Path) -> dict[str, dict[str, dict]]:
    """env -> template name -> template, from DIR/<env>/*.json; one-line errors for what cannot be read."""
    if not directory.is_dir():
        raise InputError(f"no templates directory {directory}; run `python -m generator` first")
    found: dict[str, dict[str, dict]] = {}
    for path in sorted(directory.glob("*/*.json")):
        try:
            template = json.loads(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise TemplateError(f"cannot read {path}: {e.strerror}") from None
        except ValueError as e:
            raise TemplateError(f"{path} is not JSON: {e}") from None
        resources = template.get("Resources", {}) if isinstance(template, dict) else None
        if not isinstance(resources, dict) or not all(
                isinstance(r, dict) and isinstance(r.get("Type"), str) for r in resources.values()):
            raise TemplateError(f"{path} is not a CloudFormation template: expected an object whose Resources "
                                "each have a Type")
        found.setdefault(path.parent.name, {})[path.name.removesuffix(".json")] = template
    if not found:
        raise InputError(f"no <env>/*.json templates under {directory}")
    return found


def report(findings: list[str], where: str) -> int:
    """Print the findings (stderr) or one line of success (stdout); the exit status."""
    if findings:
        print("\n".join(findings), file=sys.stderr)
        print(f"{len(findings)} rule finding(s) in {where}; `python -m generator rules --list` says what each rule "
              "enforces and where AWS documents it.", file=sys.stderr)
        return EXIT_STALE
    print(f"rules hold: {len(RULES)} rules over {where}")
    return EXIT_OK


def check_rendered(rendered: dict[str, dict[str, str]]) -> int:
    """For `python -m generator --check`: every rule over the generated templates."""
    return report(run(parse_rendered(rendered)), f"{', '.join(rendered)} as generated")


def markdown_table(rules: tuple[Rule, ...] = RULES) -> str:
    """The rule table as Markdown: id, what it enforces, the AWS page it rests on (for the security docs)."""
    rows = [f"| {r.id} | {r.description.replace('|', '&#124;')} | <{r.source}> |" for r in rules]
    return "\n".join(["| rule | enforces | source |", "|---|---|---|", *rows]) + "\n"


def command(argv: list[str]) -> int:
    """`python -m generator rules`: run every rule over a templates directory, or list them."""
    import argparse

    p = argparse.ArgumentParser(
        prog="python -m generator rules",
        description="Run the project's security and reliability rules over every environment's templates: one "
                    "line per finding, `<rule id> <env>/<template>.json <resource>: <what is wrong>`.",
        epilog="Exit status: 0 every rule holds; 1 findings (on stderr); 2 unreadable templates.")
    p.add_argument("--templates", type=Path, default=DEFAULT_TEMPLATES, metavar="DIR",
                   help="the directory of <env>/*.json templates (default: the repository's templates/)")
    p.add_argument("--list", action="store_true", help="print the rule table (Markdown) and run nothing")
    args = p.parse_args(argv)
    if args.list:
        print(markdown_table(), end="")
        return EXIT_OK
    return report(run(read_templates(args.templates)), str(args.templates))
