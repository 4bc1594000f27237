"""Every template stays inside CloudFormation's quotas; exceeding one fails generation by name.

That the committed templates are within the quotas needs no test of its own: rendering (the `rendered` fixture,
`python -m generator`) runs `render.check_limits` on every template. What can break is the check itself: an
off-by-one at the boundary, or a quota that is not the one aws_facts states.
"""

from __future__ import annotations

import pytest

from generator import aws_facts, render

# CloudFormation's documented quotas (aws_facts, with their page): template body in S3, resources, parameters and
# outputs per template.
QUOTAS = {"bytes": aws_facts.CLOUDFORMATION_MAX_TEMPLATE_BYTES, "resources": aws_facts.CLOUDFORMATION_MAX_RESOURCES,
          "parameters": aws_facts.CLOUDFORMATION_MAX_PARAMETERS, "outputs": aws_facts.CLOUDFORMATION_MAX_OUTPUTS}


def body_with(what: str, count: int) -> tuple[dict, int]:
    """A template body (and its size in bytes) that has `count` of `what` and nothing else near a quota."""
    section = {"resources": "Resources", "parameters": "Parameters", "outputs": "Outputs"}.get(what)
    if section is None:
        return {}, count
    return {section: {f"X{i}": {} for i in range(count)}}, 10


@pytest.mark.parametrize("what", sorted(QUOTAS))
def test_a_template_exactly_at_a_quota_is_accepted(what):
    render.check_limits("dev/workflow.json", *body_with(what, QUOTAS[what]))


@pytest.mark.parametrize("what", sorted(QUOTAS))
def test_one_past_a_quota_fails_naming_the_template_and_the_limit(what):
    with pytest.raises(render.LimitError) as e:
        render.check_limits("dev/workflow.json", *body_with(what, QUOTAS[what] + 1))
    message = str(e.value)
    assert message.startswith("dev/workflow.json: ") and "limit of" in message and what in message
    assert f"{QUOTAS[what]:,}" in message or str(QUOTAS[what]) in message, message
