#!/usr/bin/env python3
"""Print every checkov check skipped in the generated templates, with its reason, as a Markdown table.

A skip lives only in the resource's own Metadata (`{"checkov": {"skip": [{"id", "comment"}]}}`, written by
`generator.blocks.checkov_skip`). The same skip in several environments is one row listing them.

    python scripts/security_skips.py [TEMPLATES_DIR]     (default: the repository's templates/)

Exit status: 0; 1 if a skip lacks an id or a one-line reason (nothing else may silence a check).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "templates"


def collect(root: Path) -> tuple[dict[tuple[str, str, str, str], list[str]], list[str]]:
    """(template, resource, check id, reason) -> environments; and the problems found."""
    rows: dict[tuple[str, str, str, str], list[str]] = {}
    problems = []
    for path in sorted(root.glob("*/*.json")):
        env, template = path.parent.name, path.name
        for logical_id, resource in sorted(json.loads(path.read_text(encoding="utf-8")).get("Resources", {}).items()):
            for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
                check_id, reason = skip.get("id", ""), skip.get("comment", "")
                if not check_id or not reason.strip() or "\n" in reason:
                    problems.append(f"{env}/{template} {logical_id}: skip {check_id or '(no id)'} needs an id "
                                    "and a one-line reason")
                    continue
                rows.setdefault((template, logical_id, check_id, reason), []).append(env)
    return rows, problems


def render(rows: dict[tuple[str, str, str, str], list[str]]) -> str:
    if not rows:
        return "No checkov check is skipped: every generated resource passes every check that applies to it.\n"
    lines = ["| template | resource | check | environments | why it cannot apply |", "|---|---|---|---|---|"]
    for (template, logical_id, check_id, reason), envs in sorted(rows.items()):
        lines.append(f"| `{template}` | `{logical_id}` | {check_id} | {', '.join(sorted(envs))} | {reason} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else DEFAULT_DIR
    rows, problems = collect(root)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    sys.stdout.write(render(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
