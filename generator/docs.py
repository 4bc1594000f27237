"""The generated blocks of the documentation: text between `<!-- NAME:begin -->` and `<!-- NAME:end -->` in a
file of docs/, rendered here from the code, so that no figure or table is pasted by hand and none can drift.

`python -m generator` rewrites them along with templates/; `python -m generator --check` fails naming each stale
block and the command that fixes it. Both do so only for a run over the committed templates (the repository's
templates/, every environment, no --config): the docs describe those, not a what-if.

A new block is one row of BLOCKS: the file, the marker, and a function of the rendered templates.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from generator import config, contracts, errors
from generator.tiers import TIERS, Tier

REPO = Path(__file__).resolve().parent.parent
TEMPLATES = REPO / "templates"
FIX = "run `python -m generator` (it rewrites the generated blocks of docs/ with templates/), then commit docs/"

# env -> template file name ("main.json", "<tier>.json") -> JSON text, for every environment.
Rendered = Mapping[str, Mapping[str, str]]


class DocsError(errors.PipelineError):
    """A documentation file lacks the markers of its generated block (nothing can be put in its place)."""


@dataclass(frozen=True)
class Block:
    path: str  # relative to the repository
    marker: str  # the block is between <!-- marker:begin --> and <!-- marker:end -->
    render: Callable[[Rendered], str]  # the block's text, ending in a newline


# ------------------------------------------------------------------------------------------------ tiers

def producers(tiers: tuple[Tier, ...] = TIERS) -> dict[str, dict[str, list[str]]]:
    """consumer tier -> producer (a tier's name, or "main.json" for a deploy-time parameter) -> contract names,
    in the consumer's CONSUMES order. The parent wires each Parameter to the one earlier tier producing it."""
    deploy_time = {c.name for c in contracts.DEPLOY_TIME}
    produced_by: dict[str, str] = {}
    wiring: dict[str, dict[str, list[str]]] = {}
    for t in tiers:
        wiring[t.name] = {}
        for c in t.consumes:
            source = produced_by.get(c.name) or ("main.json" if c.name in deploy_time else None)
            if source is None:
                raise errors.WiringError(f"tier {t.name} consumes {c.name}, which no earlier tier produces and the "
                                         "parent does not take at deploy time; see contracts.py and the registry "
                                         "order in tiers/__init__.py")
            wiring[t.name].setdefault(source, []).append(c.name)
        order = ["main.json", *(u.name for u in tiers)]  # the parent first, then the registry's order
        wiring[t.name] = dict(sorted(wiring[t.name].items(), key=lambda item: order.index(item[0])))
        for c in t.produces:
            produced_by.setdefault(c.name, t.name)
    return wiring


def depths(tiers: tuple[Tier, ...] = TIERS) -> dict[str, int]:
    """Tier -> how many stacks deep it is: 1 for a tier consuming no other tier's outputs, else one more than the
    deepest tier it consumes from (a stack waits only for those: the parent has no DependsOn)."""
    depth: dict[str, int] = {}
    for name, sources in producers(tiers).items():
        depth[name] = 1 + max((depth[s] for s in sources if s in depth), default=0)
    return depth


def tier_diagram(tiers: tuple[Tier, ...] = TIERS) -> str:
    """A Mermaid flowchart of which tier consumes which contracts from which, a table of the same, and the order
    the stacks can deploy in: all from the registry (tiers/__init__.py) and the tiers' CONSUMES and PRODUCES."""
    wiring = producers(tiers)
    lines = ["```mermaid", "flowchart LR", '  parent(["main.json<br/>deploy-time parameters"])']
    lines += [f'  tier_{t.name}["{t.name}<br/>{t.title}"]' for t in tiers]
    for consumer, sources in wiring.items():
        for source, names in sources.items():
            label = ", ".join(names)
            if source == "main.json":
                lines.append(f'  parent -. "{label}" .-> tier_{consumer}')
            else:
                lines.append(f'  tier_{source} -- "{label}" --> tier_{consumer}')
    lines += ["```", "", "| tier (stack in main.json) | consumes, by producer | produces |", "|---|---|---|"]
    for t in tiers:
        consumed = "; ".join(f"{source}: {', '.join(f'`{n}`' for n in names)}"
                             for source, names in wiring[t.name].items()) or "nothing"
        produced = ", ".join(f"`{c.name}`" for c in t.produces) or "nothing"
        lines.append(f"| `{t.name}` (`{t.title}`) | {consumed} | {produced} |")
    depth = depths(tiers)
    waves = [", ".join(t.name for t in tiers if depth[t.name] == d) for d in range(1, max(depth.values()) + 1)]
    lines += ["", "Deploy order: a stack waits only for the stacks whose outputs it consumes, so the stacks of one "
              "step deploy in parallel: " + "; ".join(f"{i}. {wave}" for i, wave in enumerate(waves, 1)) + "."]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------ checkov skips

SkipRows = dict[tuple[str, str, str, str], list[str]]


def checkov_skips(templates: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> tuple[SkipRows, list[str]]:
    """(template file, resource, check id, reason) -> environments, from every resource's Metadata
    (`{"checkov": {"skip": [{"id", "comment"}]}}`, written by blocks.checkov_skip); and the skips that lack an id
    or a one-line reason. `templates`: env -> template file name -> parsed template."""
    rows: SkipRows = {}
    problems = []
    for env in sorted(templates):
        for template in sorted(templates[env]):
            for logical_id, resource in sorted(templates[env][template].get("Resources", {}).items()):
                for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
                    check_id, reason = skip.get("id", ""), skip.get("comment", "")
                    if not check_id or not reason.strip() or "\n" in reason:
                        problems.append(f"{env}/{template} {logical_id}: skip {check_id or '(no id)'} needs an id "
                                        "and a one-line reason")
                        continue
                    rows.setdefault((template, logical_id, check_id, reason), []).append(env)
    return rows, problems


def skips_markdown(rows: SkipRows) -> str:
    if not rows:
        return "No checkov check is skipped: every generated resource passes every check that applies to it.\n"
    lines = ["| template | resource | check | environments | why it cannot apply |", "|---|---|---|---|---|"]
    for (template, logical_id, check_id, reason), envs in sorted(rows.items()):
        lines.append(f"| `{template}` | `{logical_id}` | {check_id} | {', '.join(sorted(envs))} | {reason} |")
    return "\n".join(lines) + "\n"


def security_skips(rendered: Rendered) -> str:
    rows, problems = checkov_skips({env: {name: orjson.loads(text) for name, text in files.items()}
                                    for env, files in rendered.items()})
    if problems:  # blocks.checkov_skip refuses these while generating; a hand-made Metadata could still hold one
        raise errors.SkipError(problems[0])
    return skips_markdown(rows)


# ------------------------------------------------------------------------------------------------ the blocks

def capacity_block(rendered: Rendered) -> str:
    from generator import capacity  # here: a plain generation run without docs does not need it

    printed = capacity.render([capacity.capacity(cfg) for cfg in config.ENVIRONMENTS.values()])
    return f"```\n$ python -m generator capacity\n{printed}```\n"


def runbook_block(rendered: Rendered) -> str:
    from generator import runbook

    return runbook.markdown()


def rules_table() -> str:
    from generator import rules

    return rules.markdown_table()


def cost_block(rendered: Rendered) -> str:
    from generator.cost import render  # reads the templates just written (or checked fresh) and the price snapshot

    return render.cost_section()


BLOCKS = (
    Block("docs/architecture.md", "tiers", lambda rendered: tier_diagram()),
    Block("docs/operations.md", "runbook", runbook_block),
    Block("docs/capacity.md", "capacity", capacity_block),
    Block("docs/security.md", "rules", lambda rendered: rules_table()),
    Block("docs/security.md", "security-skips", security_skips),
    Block("docs/cost.md", "cost", cost_block),
)


def markers(marker: str) -> tuple[str, str]:
    return f"<!-- {marker}:begin -->\n", f"<!-- {marker}:end -->"


def current(text: str, block: Block) -> tuple[int, int]:
    """Where the block's text starts and ends in the file's text."""
    begin, end = markers(block.marker)
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise DocsError(f"{block.path} needs one line `{begin.strip()}` and, after it, one `{end}` around its "
                        f"generated block (found {text.count(begin)} and {text.count(end)}); put them back where "
                        "the block belongs, then run `python -m generator`")
    return text.index(begin) + len(begin), text.index(end)


def read(block: Block, root: Path) -> str:
    try:
        return (root / block.path).read_text(encoding="utf-8")
    except OSError as e:
        raise DocsError(f"cannot read {block.path}: {e.strerror}; it holds the generated block `{block.marker}` "
                        "(generator/docs.py)") from None


def stale(rendered: Rendered, root: Path = REPO) -> list[str]:
    """One line per block whose file does not hold what would be generated."""
    problems = []
    for block in BLOCKS:
        text = read(block, root)
        start, end = current(text, block)
        if text[start:end] != block.render(rendered):
            problems.append(f"stale:   {block.path} (generated block `{block.marker}`)")
    return problems


def updated(rendered: Rendered, root: Path = REPO) -> dict[Path, str]:
    """Every documentation file holding a block, as it would be with every block freshly rendered."""
    texts: dict[Path, str] = {}
    for block in BLOCKS:
        path = root / block.path
        text = texts[path] if path in texts else read(block, root)
        start, end = current(text, block)
        texts[path] = text[:start] + block.render(rendered) + text[end:]
    return texts


def write(rendered: Rendered, root: Path = REPO) -> list[Path]:
    """Rewrite the files whose blocks changed (each replaced whole, by a rename); the files rewritten."""
    changed = []
    for path, text in updated(rendered, root).items():
        if path.read_text(encoding="utf-8") != text:
            staged = path.with_name(f".{path.name}.{os.getpid()}")
            staged.write_text(text, encoding="utf-8")
            os.replace(staged, path)
            changed.append(path)
    return changed


def follow(rendered: Rendered, *, check: bool, out: Path, whole: bool, root: Path = REPO) -> int:
    """After `python -m generator [--check]`: write or check the blocks when the run covered the committed
    templates (`out` is the repository's templates/ and `whole`: every environment, no --config); else nothing.
    Returns the exit status."""
    if not whole or out.resolve() != (root / "templates").resolve():
        return errors.EXIT_OK
    if check:
        problems = stale(rendered, root)
        if problems:
            print("\n".join(problems), file=sys.stderr)
            print(f"{len(problems)} generated block(s) of docs/ differ from the code; {FIX}.", file=sys.stderr)
            return errors.EXIT_STALE
        print(f"docs up to date: {len(BLOCKS)} generated blocks ({', '.join(b.path for b in BLOCKS)})")
        return errors.EXIT_OK
    for path in write(rendered, root):
        print(f"rewrote {path.relative_to(root)} (generated blocks)")
    return errors.EXIT_OK
