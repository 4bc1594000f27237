"""The committed templates/ are exactly what the generator emits, byte for byte, in any interpreter."""

from __future__ import annotations

import difflib
import json

import pytest

from conftest import TEMPLATES


def tree(root) -> dict[str, dict[str, str]]:
    """env -> file name -> text of every file under root/<env>/."""
    return {env.name: {f.name: f.read_text(encoding="utf-8") for f in sorted(env.iterdir())}
            for env in sorted(root.iterdir()) if env.is_dir()}


def differences(expected: dict, actual: dict, expected_label: str, actual_label: str) -> list[str]:
    problems = []
    if sorted(expected) != sorted(actual):
        problems.append(f"environments: {expected_label} {sorted(expected)} != {actual_label} {sorted(actual)}")
    for env in sorted(set(expected) & set(actual)):
        if sorted(expected[env]) != sorted(actual[env]):
            problems.append(f"{env}: files in {expected_label} {sorted(expected[env])} != "
                            f"{actual_label} {sorted(actual[env])}")
        for name in sorted(set(expected[env]) & set(actual[env])):
            if expected[env][name] != actual[env][name]:
                problems.append("".join(difflib.unified_diff(
                    expected[env][name].splitlines(keepends=True), actual[env][name].splitlines(keepends=True),
                    fromfile=f"{expected_label}/{env}/{name}", tofile=f"{actual_label}/{env}/{name}", n=2)))
    return problems


def test_committed_templates_equal_generated_output(rendered):
    problems = differences(tree(TEMPLATES), rendered, "committed", "generated")
    assert not problems, "templates/ is stale; run `python -m generator`:\n" + "\n".join(problems)


@pytest.mark.parametrize("seed", ["1", "2"])
def test_generation_is_byte_identical_in_a_fresh_interpreter_under_any_hash_seed(
        rendered, fresh_generator_runs, seed):
    """Set or dict ordering that depends on the hash seed, or any other per-process state, changes some byte."""
    output = tree(fresh_generator_runs[seed][0])
    problems = (differences(rendered, output, "in-process", f"PYTHONHASHSEED={seed}")
                + differences(tree(TEMPLATES), output, "committed", f"PYTHONHASHSEED={seed}"))
    assert not problems, "\n".join(problems)


def test_json_is_sorted_two_space_indented_with_trailing_newline(rendered):
    for env, files in rendered.items():
        for name, text in files.items():
            assert text.endswith("}\n") and not text.endswith("\n\n"), f"{env}/{name}"
            assert text.startswith('{\n  "AWSTemplateFormatVersion"'), f"{env}/{name}"
            body = json.loads(text)
            canonical = json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
            assert text == canonical, f"{env}/{name} is not sorted, two-space indented JSON"


def test_every_environment_has_a_parent_and_exactly_the_templates_it_nests(templates):
    for env, files in templates.items():
        nested = {r["Properties"]["TemplateURL"] for r in files["main"]["Resources"].values()
                  if r["Type"] == "AWS::CloudFormation::Stack"}
        assert {f"{tier}.json" for tier in files} == {"main.json", *nested}, env


def test_the_fast_encoder_writes_exactly_what_the_standard_library_writes(templates):
    """render.to_json uses orjson for speed; the format is json.dumps(sort_keys=True, indent=2, ensure_ascii=False)."""
    from generator import render

    for env, files in templates.items():
        for name, body in files.items():
            assert render.to_json(body) == render.to_json_standard(body), f"{env}/{name}"
    tricky = {"b": [], "a": {}, "é": "ü ✓", "n": [1, -2, True, False, None], "q": "\"\\\n\t", "z": {"y": [{}]}}
    assert render.to_json(tricky) == render.to_json_standard(tricky)
