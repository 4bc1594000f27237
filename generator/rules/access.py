"""The access proof as a rule (VP7xx, issue #21): every runtime AWS call is allowed on its route."""

from __future__ import annotations

from generator import access
from generator.rules.common import Templates, rule


@rule("VP701", "Every AWS call the runtime makes (recorded in the tests, the state machine's integrations, the "
      "processor's contract) is allowed by its identity, endpoint, key and resource policies",
      "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html")
def runtime_access(templates: Templates) -> list[str]:
    """generator.access.prove: one finding per call AWS would refuse, naming the call and the policy."""
    return access.prove(templates)
