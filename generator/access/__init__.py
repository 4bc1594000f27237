"""The access proof: every AWS call the runtime makes, judged against every policy AWS would apply to it.

For each environment, generator.access.runtime lists the calls (the functions' and the processor's calls as the
tests record them in recorded_calls.json, the state machine's integrations, the processor's contract, AWS's
deliveries for the wiring),
each with its caller's role, action, resource, network route (generator.access.routes: gateway endpoint, interface
endpoint if its security groups admit the caller's, NAT gateway, or service-side for calls AWS services make for
us) and the KMS uses it implies; then
generator.access.policy evaluates each against the identity policy, the endpoint policy on its route, the key policy
of every key involved and the resource policy. A finding names the call and what refuses it:

    prod/schema.json BootstrapFunction: s3:PutObject on arn:aws:s3:::cloudformation-custom-resource-response-...
      (recorded handler.handler s3.PutObject) via the gateway endpoint prod/network.json S3GatewayEndpoint:
      no statement of the gateway endpoint policy prod/network.json S3GatewayEndpoint allows it

Rule VP701 (generator.rules.access) runs it in the security gate; tests/test_access_proof.py records the calls
and proves the evaluator on mutants of the templates.

Recorded calls (recorded_calls.json): per handler, each API operation with the parameters that name what it acts
on, as symbols of the function's contract: `${JOBS_TABLE}` (an environment variable), `${execution of X}` (an
execution of the state machine X names), `${ResourceProperties.Name}` (a custom resource's property),
`${ResponseURL}` (the custom resource request's pre-signed response URL), `${OUTPUTS_PREFIX}manifest.json` (a key
under a prefix the contract names); the processor's (package `processor`) name its container's environment,
including what the state machine passes per execution. An entry may say `presigned` (a URL the client calls from
its side: the public endpoint), `missing` (S3 answered "no such key") or `only` (made only where its symbols render
to those values, e.g. `{"DeletionPolicy": "Delete"}`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from generator.errors import InputError

RECORDED_CALLS = Path(__file__).resolve().parent / "recorded_calls.json"
RECORD_COMMAND = "ACCESS_RECORD_CALLS=1 python -m pytest tests/test_access_proof.py -n 0 -k recorded"


def load_recorded(path: Path = RECORDED_CALLS) -> list[dict]:
    """The recorded calls: [{package, handler, operation ("dynamodb.GetItem"), parameters {name: symbol or
    [symbols]}, presigned (only when true)}]."""
    try:
        calls = json.loads(path.read_text(encoding="utf-8"))["calls"]
        for c in calls:
            if not (isinstance(c["package"], str) and isinstance(c["handler"], str)
                    and isinstance(c["operation"], str) and isinstance(c["parameters"], dict)):
                raise TypeError("package, handler, operation and parameters")
        return calls
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror}") from None
    except (ValueError, KeyError, TypeError) as e:
        raise InputError(f"{path} is not a record of calls ({type(e).__name__}: {e}); rewrite it with "
                         f"{RECORD_COMMAND}") from None


def region_of(env: str) -> str:
    from generator import config

    cfg = config.ENVIRONMENTS.get(env)
    return cfg.region if cfg is not None else config.DEFAULT_REGION


def prove(templates: Mapping[str, Mapping[str, dict]], recorded: list[dict] | None = None,
          regions: Mapping[str, str] | None = None) -> list[str]:
    """One line per call AWS would refuse, over every environment (env -> template name -> template)."""
    from generator.access.runtime import Environment, environment_calls

    recorded = load_recorded() if recorded is None else recorded
    findings: list[str] = []
    for env, stacks in sorted(templates.items()):
        region = (regions or {}).get(env) or region_of(env)
        seen = set()
        for call in environment_calls(Environment(env, stacks, region), recorded):
            verdict = call.verdict()
            if verdict and verdict not in seen:
                seen.add(verdict)
                findings.append(verdict)
    return findings


def calls_of(templates: Mapping[str, Mapping[str, dict]], env: str, recorded: list[dict] | None = None) -> list:
    """Every call of one environment (generator.access.runtime.Call), for the tests and for reading."""
    from generator.access.runtime import Environment, environment_calls

    recorded = load_recorded() if recorded is None else recorded
    return environment_calls(Environment(env, templates[env], region_of(env)), recorded)
