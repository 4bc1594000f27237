"""Every template stays inside CloudFormation's quotas; exceeding one fails generation by name."""

from __future__ import annotations

import json

import pytest

from generator import render


def test_every_template_is_within_cloudformation_limits(rendered):
    for env, files in rendered.items():
        for name, text in files.items():
            body = json.loads(text)
            assert len(text.encode()) < render.MAX_TEMPLATE_BYTES, f"{env}/{name}"
            assert len(body["Resources"]) <= render.MAX_RESOURCES, f"{env}/{name}"
            assert len(body.get("Parameters", {})) <= render.MAX_PARAMETERS, f"{env}/{name}"
            assert len(body.get("Outputs", {})) <= render.MAX_OUTPUTS, f"{env}/{name}"


@pytest.mark.parametrize("what, body, size", [
    ("resources", {"Resources": {f"R{i}": {} for i in range(501)}}, 10),
    ("parameters", {"Parameters": {f"P{i}": {} for i in range(201)}}, 10),
    ("outputs", {"Outputs": {f"O{i}": {} for i in range(201)}}, 10),
    ("bytes", {}, 1_000_001),
])
def test_exceeding_a_limit_names_the_template_and_the_limit(what, body, size):
    with pytest.raises(render.LimitError) as e:
        render.check_limits("dev/workflow.json", body, size)
    assert str(e.value).startswith("dev/workflow.json: ") and "limit of" in str(e.value) and what in str(e.value)
