#!/usr/bin/env python3
"""Print every checkov check skipped in the generated templates, with its reason, as a Markdown table.

A skip lives only in the resource's own Metadata (`{"checkov": {"skip": [{"id", "comment"}]}}`, written by
`generator.blocks.checkov_skip`). The same skip in several environments is one row listing them; the table is
the one `python -m generator` writes into docs/security.md (generator/docs.py renders both).

    python scripts/security_skips.py [TEMPLATES_DIR]     (default: the repository's templates/)

Exit status: 0; 1 if a skip lacks an id or a one-line reason (nothing else may silence a check).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from generator.docs import checkov_skips, skips_markdown  # the same table docs/security.md holds

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "templates"


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else DEFAULT_DIR
    templates: dict[str, dict[str, dict]] = {}
    for path in sorted(root.glob("*/*.json")):
        templates.setdefault(path.parent.name, {})[path.name] = json.loads(path.read_text(encoding="utf-8"))
    rows, problems = checkov_skips(templates)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    sys.stdout.write(skips_markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
