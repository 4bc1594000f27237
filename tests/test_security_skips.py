"""checkov skips: only in resource Metadata, each with a one-line reason, listed in docs/security.md as the script
prints them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from generator import blocks, docs

from conftest import REPO


def script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "security_skips.py"), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def listed() -> str:
    """What `python scripts/security_skips.py` prints for the committed templates."""
    result = script()
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_docs_block_lists_exactly_the_skips_the_script_prints(rendered, listed):
    """docs/security.md's block (rendered from the generator's output in memory) and the script (reading the
    committed templates) agree: CI prints the same table the security posture shows."""
    block = next(b for b in docs.BLOCKS if b.marker == "security-skips")
    assert block.path == "docs/security.md"
    assert block.render(rendered) == listed, "generator/docs.py renders another skip table than the script prints"


def test_every_skip_in_the_templates_is_in_the_list(templates, listed):
    for env, tiers in templates.items():
        for tier, body in tiers.items():
            for logical_id, r in body.get("Resources", {}).items():
                for skip in r.get("Metadata", {}).get("checkov", {}).get("skip", []):
                    row = f"| `{tier}.json` | `{logical_id}` | {skip['id']} |"
                    assert row in listed and env in listed.split(row)[1].split("\n")[0], (env, row)


def test_script_refuses_a_skip_without_a_reason(tmp_path):
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "x.json").write_text(json.dumps({"Resources": {"Key": {
        "Type": "AWS::KMS::Key", "Metadata": {"checkov": {"skip": [{"id": "CKV_AWS_7"}]}}}}}))
    result = script(str(tmp_path))
    assert result.returncode == 1 and "dev/x.json Key: skip CKV_AWS_7" in result.stderr


def test_checks_are_silenced_nowhere_but_in_resource_metadata():
    for path in (REPO / "dev.sh", REPO / ".ci" / "run"):
        commands = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]
        assert not [c for c in commands if "--skip-check" in c or "--soft-fail" in c], path
    assert not list(REPO.glob(".checkov.y*ml")), "a checkov config file could skip checks outside Metadata"
    assert "./dev.sh security" in (REPO / ".ci" / "run").read_text()


def test_checkov_skip_keeps_other_metadata_and_sorts_by_check():
    metadata = blocks.checkov_skip(("CKV_AWS_9", "b"), ("CKV_AWS_10", "a"),
                                   metadata={"cfn-lint": {"config": {"ignore_checks": ["W3002"]}}})
    assert metadata == {"cfn-lint": {"config": {"ignore_checks": ["W3002"]}},
                        "checkov": {"skip": [{"id": "CKV_AWS_10", "comment": "a"},
                                             {"id": "CKV_AWS_9", "comment": "b"}]}}
    assert blocks.checkov_skip(("CKV_AWS_1", "c"), metadata=metadata)["checkov"]["skip"][0]["id"] == "CKV_AWS_1"


@pytest.mark.parametrize("skip", [("CKV_AWS_7", ""), ("CKV_AWS_7", "two\nlines"), ("W3002", "not checkov")])
def test_checkov_skip_refuses_a_missing_or_multi_line_reason_or_a_bad_id(skip):
    with pytest.raises(ValueError):
        blocks.checkov_skip(skip)

