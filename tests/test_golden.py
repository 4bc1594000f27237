"""The committed templates/ are exactly what the generator emits, byte for byte."""

from __future__ import annotations

import difflib

from generator import config
from generator.render import render_environment

from conftest import TEMPLATES


def test_committed_templates_equal_generated_output(rendered):
    problems = []
    if sorted(p.name for p in TEMPLATES.iterdir()) != sorted(rendered):
        problems.append(f"templates/ holds {sorted(p.name for p in TEMPLATES.iterdir())}, not {sorted(rendered)}")
    for env, files in rendered.items():
        on_disk = sorted(p.name for p in (TEMPLATES / env).glob("*"))
        if on_disk != sorted(files):
            problems.append(f"{env}: files on disk {on_disk} != generated {sorted(files)}")
        for name, text in sorted(files.items()):
            path = TEMPLATES / env / name
            committed = path.read_text(encoding="utf-8") if path.exists() else ""
            if committed != text:
                problems.append("".join(difflib.unified_diff(
                    committed.splitlines(keepends=True), text.splitlines(keepends=True),
                    fromfile=f"committed/{env}/{name}", tofile=f"generated/{env}/{name}", n=2)))
    assert not problems, "templates/ is stale; run `python -m generator`:\n" + "\n".join(problems)


def test_generation_is_deterministic(rendered):
    for name, cfg in config.ENVIRONMENTS.items():
        assert render_environment(cfg) == rendered[name]


def test_json_is_sorted_two_space_indented_with_trailing_newline(rendered):
    text = rendered["dev"]["main.json"]
    assert text.endswith("}\n") and not text.endswith("\n\n")
    assert text.startswith('{\n  "AWSTemplateFormatVersion"')


def test_every_environment_has_a_parent_and_one_template_per_tier(rendered):
    from generator.tiers import TIERS

    for env, files in rendered.items():
        assert sorted(files) == sorted(["main.json", *(f"{tier.name}.json" for tier in TIERS)])
