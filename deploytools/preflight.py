"""Checks of the account against an environment's templates, before a change set is created (deploy.sh).

    python -m deploytools.preflight check --env E --template-dir D --change-set-type CREATE|UPDATE
    python -m deploytools.preflight retained-log-groups --template-dir D     the ones that exist (one a line)
    python -m deploytools.preflight remove-retained --template-dir D         delete them (deploy.sh confirms)
    python -m deploytools.preflight validate-policies --template-dir D       IAM Access Analyzer on every policy

In the spirit of `rain forecast`: what would make CloudFormation fail later, or the pipeline fail once
deployed, asked of the account now. Each check prints one line, `ok`, `warning` or `BLOCKING` with what to do;
any blocking check exits 2 before anything is changed (there is no --force: each would only fail later).

| check | blocks when |
|---|---|
| bootstrap | the ECS service-linked role or the API Gateway CloudWatch role setting is missing |
| lambda-concurrency | the API function's reservation would leave fewer than 100 unreserved executions |
| fargate-vcpu | the Fargate vCPU quota cannot run one task (warns when it cannot run max_concurrent_videos at once) |
| retained-names | a create would collide with a log group a deleted stack retained under the same name |
| engine-version | RDS no longer offers the database's engine version in the region (create) |

An API the endpoint does not implement (the local emulator lacks some) is a warning saying it was not checked.

`validate-policies` (deploy.sh --plan, issue #21) sends every IAM, trust, key, resource and endpoint policy of the
templates, rendered for the account and region, to IAM Access Analyzer's ValidatePolicy and prints its findings,
one a line; an ERROR blocks (exit 2, like a blocking check), warnings and suggestions are shown.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deploytools.bootstrap import Account, api_gateway_role_arn, ecs_role_exists, error_code
from generator import aws_facts, config, errors

OK, WARNING, BLOCKING = "ok", "warning", "BLOCKING"
Templates = dict[str, dict[str, Any]]  # file stem (main, api, ...) -> template
Check = tuple[str, str, str]  # (status, name, message)


def read_templates(template_dir: str) -> Templates:
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(Path(template_dir).glob("*.json"))}


def _resources(templates: Templates, type_: str) -> list[dict[str, Any]]:
    return [r for t in templates.values() for r in t.get("Resources", {}).values() if r.get("Type") == type_]


# --- what the templates ask for -------------------------------------------------------------------------------

def reserved_concurrency(templates: Templates) -> int:
    return sum(int(r["Properties"].get("ReservedConcurrentExecutions", 0))
               for r in _resources(templates, "AWS::Lambda::Function"))


def reserving_functions(templates: Templates) -> list[tuple[str, int]]:
    return sorted((r["Properties"]["FunctionName"], int(r["Properties"]["ReservedConcurrentExecutions"]))
                  for r in _resources(templates, "AWS::Lambda::Function")
                  if r["Properties"].get("ReservedConcurrentExecutions"))


def retained_log_group_names(templates: Templates) -> list[str]:
    """Log groups with a fixed name that outlive a deleted stack: a create of the same name collides."""
    return sorted(r["Properties"]["LogGroupName"] for r in _resources(templates, "AWS::Logs::LogGroup")
                  if r.get("DeletionPolicy") in aws_facts.RETAINING_POLICIES
                  and isinstance(r["Properties"].get("LogGroupName"), str))


def engine_versions(templates: Templates) -> list[tuple[str, str]]:
    return sorted({(r["Properties"]["Engine"], str(r["Properties"]["EngineVersion"]))
                   for r in _resources(templates, "AWS::RDS::DBInstance") if "EngineVersion" in r["Properties"]})


def task_vcpus(templates: Templates) -> float:
    cpus = [int(r["Properties"]["Cpu"]) for r in _resources(templates, "AWS::ECS::TaskDefinition")
            if "Cpu" in r["Properties"]]
    return max(cpus, default=0) / aws_facts.FARGATE_CPU_UNITS_PER_VCPU


def uses_spot(templates: Templates) -> bool:
    return any(item.get("CapacityProvider") == "FARGATE_SPOT"
               for r in _resources(templates, "AWS::ECS::Cluster")
               for item in r["Properties"].get("DefaultCapacityProviderStrategy", []))


# --- the checks ------------------------------------------------------------------------------------------------

class NotImplementedByEndpoint(Exception):
    pass


def _call(func: Callable[..., Any], **kwargs: Any) -> Any:
    """An API call; an endpoint that does not implement it (the emulator) raises NotImplementedByEndpoint."""
    from botocore.parsers import ResponseParserError

    try:
        return func(**kwargs)
    except ResponseParserError:  # moto's server answers an action it lacks with an HTML 500 page
        raise NotImplementedByEndpoint(func.__name__) from None
    except Exception as e:
        text = str(e)
        if "Not yet implemented" in text or "not been implemented" in text or error_code(e) in ("404", "500"):
            raise NotImplementedByEndpoint(func.__name__) from None
        raise


def check_bootstrap(acct: Account, env: str, **_: Any) -> Check:
    missing = []
    if not ecs_role_exists(acct):
        missing.append(f"the ECS service-linked role {aws_facts.ECS_SERVICE_LINKED_ROLE}")
    if not api_gateway_role_arn(acct):
        missing.append("the API Gateway CloudWatch role setting")
    if missing:
        return (BLOCKING, "bootstrap", f"{' and '.join(missing)} missing in {acct.region}: run "
                f"./deploy.sh --bootstrap --env {env} (once per account and region)")
    return OK, "bootstrap", "ECS service-linked role and API Gateway CloudWatch role present"


def check_lambda_concurrency(acct: Account, templates: Templates, **_: Any) -> Check:
    name = "lambda-concurrency"
    wanted = reserving_functions(templates)
    if not wanted:
        return OK, name, "no reserved concurrency (api_reserved_concurrency 0): nothing to reserve"
    lam = acct.client("lambda")
    limits = _call(lam.get_account_settings)["AccountLimit"]
    unreserved = int(limits["UnreservedConcurrentExecutions"])
    held = 0  # what these functions reserve already comes back to the pool when they reserve anew
    for function, _reserved in wanted:
        try:
            held += int(lam.get_function_concurrency(FunctionName=function).get("ReservedConcurrentExecutions") or 0)
        except Exception as e:
            if error_code(e) != "ResourceNotFoundException":
                raise
    total = sum(n for _, n in wanted)
    left = unreserved + held - total
    quota = int(limits["ConcurrentExecutions"])
    if left < aws_facts.LAMBDA_MIN_UNRESERVED:
        need = quota + aws_facts.LAMBDA_MIN_UNRESERVED - left
        return (BLOCKING, name, f"reserving {total} would leave {left} unreserved executions of the account's "
                f"{quota} (Lambda keeps {aws_facts.LAMBDA_MIN_UNRESERVED}): request Lambda's concurrency quota "
                f"{aws_facts.LAMBDA_CONCURRENCY_QUOTA} of at least {need} in Service Quotas, or lower "
                "api_reserved_concurrency (0: none) in generator/config.py")
    return OK, name, f"reserving {total} leaves {left} of {quota} unreserved"


def _quota(acct: Account, code: str) -> float:
    sq = acct.client("service-quotas")
    try:
        return float(_call(sq.get_service_quota, ServiceCode="fargate", QuotaCode=code)["Quota"]["Value"])
    except NotImplementedByEndpoint:
        raise
    except Exception as e:
        if error_code(e) != "NoSuchResourceException":  # never changed from the default
            raise
    return float(_call(sq.get_aws_default_service_quota, ServiceCode="fargate", QuotaCode=code)["Quota"]["Value"])


def check_fargate_vcpu(acct: Account, templates: Templates, env: str, **_: Any) -> Check:
    name = "fargate-vcpu"
    per_task = task_vcpus(templates)
    if not per_task:
        return OK, name, "no Fargate task definition"
    spot = uses_spot(templates)
    code = aws_facts.FARGATE_SPOT_VCPU_QUOTA if spot else aws_facts.FARGATE_ON_DEMAND_VCPU_QUOTA
    kind = "Spot" if spot else "On-Demand"
    cfg = config.ENVIRONMENTS.get(env)
    peak = cfg.max_concurrent_videos if cfg else 1
    quota = _quota(acct, code)
    need = per_task * peak
    # What generator/config.py assumes the account has (and `python -m generator capacity` plans with).
    request = max(need, cfg.fargate_vcpu_quota) if cfg else need
    assumed = f" (generator/config.py assumes {cfg.fargate_vcpu_quota}: fargate_vcpu_quota)" if cfg else ""
    what = f"Fargate {kind} vCPU quota {code} is {quota:g}"
    if quota < per_task:
        return (BLOCKING, name, f"{what}: not one task ({per_task:g} vCPU) can run; request {request:g}{assumed} "
                "in Service Quotas")
    if quota < need:
        return (WARNING, name, f"{what}, max_concurrent_videos {peak} x {per_task:g} vCPU needs {need:g} (shared with "
                f"everything else on Fargate in the region): request {request:g}{assumed} in Service Quotas")
    return OK, name, f"{what}; max_concurrent_videos {peak} x {per_task:g} vCPU needs {need:g}"


def _existing_retained(acct: Account, templates: Templates) -> list[dict[str, Any]]:
    logs = acct.client("logs")
    found = []
    for group in retained_log_group_names(templates):
        listed = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
        found += [g for g in listed if g["logGroupName"] == group]
    return found


def existing_retained_log_groups(acct: Account, templates: Templates) -> list[str]:
    return [g["logGroupName"] for g in _existing_retained(acct, templates)]


def check_retained_names(acct: Account, templates: Templates, env: str, change_set_type: str, **_: Any) -> Check:
    name = "retained-names"
    if change_set_type != "CREATE":
        return OK, name, "an update creates no retained name anew"
    found = existing_retained_log_groups(acct, templates)
    if found:
        return (BLOCKING, name, f"{len(found)} log group(s) retained from a deleted stack would collide with the "
                f"create ({', '.join(found)}): export what you need, then ./deploy.sh --env {env} --remove-retained")
    return OK, name, f"none of the {len(retained_log_group_names(templates))} retained names exists"


def check_engine_version(acct: Account, templates: Templates, change_set_type: str, **_: Any) -> Check:
    name = "engine-version"
    wanted = engine_versions(templates)
    if not wanted:
        return OK, name, "no database"
    rds = acct.client("rds")
    missing = []
    offered = []
    for engine, version in wanted:
        found = _call(rds.describe_db_engine_versions, Engine=engine, EngineVersion=version,
                      DefaultOnly=True)["DBEngineVersions"]
        if found:
            offered.append(f"{engine} {version} (creates {found[0]['EngineVersion']})")
        else:
            missing.append(f"{engine} {version}")
    if missing:
        status = BLOCKING if change_set_type == "CREATE" else WARNING
        return (status, name, f"{', '.join(missing)} no longer offered in {acct.region}: move to an offered major "
                "(storage.POSTGRES_MAJOR_VERSION and its parameter group family)")
    return OK, name, ", ".join(offered) + " offered"


# --- IAM Access Analyzer: every policy document of the templates, validated by AWS --------------------------------
# https://docs.aws.amazon.com/access-analyzer/latest/APIReference/API_ValidatePolicy.html
# AWS's cfn-policy-validator (PyPI) wraps the same API, but is not used: it resolves one template at a time (our
# children's parameters come from the parent), has no parser for VPC endpoint or EFS file system policies, needs
# botocore[crt] (awscrt, not a dependency here) and calls STS before it parses anything.

POLICY_RESOURCE_TYPES = {"AWS::S3::BucketPolicy": "AWS::S3::Bucket", "AWS::DynamoDB::Table": "AWS::DynamoDB::Table"}
ANALYZER = "access-analyzer"


def policies_to_validate(templates: Templates, region: str, account: str) -> list[tuple[str, str, str | None, str]]:
    """(where, policyType, validatePolicyResourceType or None, document JSON) of every policy document of one
    environment's templates, intrinsics rendered for the account and region (generator.access.values)."""
    from generator.access.values import Renderer
    from generator.rules.common import IDENTITY_POLICY_TYPES, policy_documents

    renderer = Renderer(templates, region, account)
    found = []
    for stem, template in sorted(templates.items()):
        for logical_id, resource in sorted((template.get("Resources") or {}).items()):
            for path, document in policy_documents(resource.get("Properties", {})):
                if path.startswith("AssumeRolePolicyDocument"):
                    kind, resource_type = "RESOURCE_POLICY", "AWS::IAM::AssumeRolePolicyDocument"
                elif resource.get("Type") in IDENTITY_POLICY_TYPES:
                    kind, resource_type = "IDENTITY_POLICY", None
                else:
                    kind, resource_type = "RESOURCE_POLICY", POLICY_RESOURCE_TYPES.get(resource.get("Type", ""))
                text = json.dumps(renderer.value(stem, document), sort_keys=True, separators=(",", ":"))
                found.append((f"{stem}.json {logical_id} {path}", kind, resource_type, text))
    return found


def validate_policies(acct: Account, templates: Templates) -> tuple[list[str], int]:
    """One line per Access Analyzer finding (and a summary line), and the number of ERROR findings."""
    analyzer = acct.client("accessanalyzer")
    policies = policies_to_validate(templates, acct.region, acct.account_id)
    lines, counts = [], {"ERROR": 0, "SECURITY_WARNING": 0, "WARNING": 0, "SUGGESTION": 0}
    for where, kind, resource_type, text in policies:
        request: dict[str, Any] = {"policyDocument": text, "policyType": kind}
        if resource_type:
            request["validatePolicyResourceType"] = resource_type
        token = None
        while True:
            page = _call(analyzer.validate_policy, **request, **({"nextToken": token} if token else {}))
            for f in page.get("findings", []):
                counts[f["findingType"]] = counts.get(f["findingType"], 0) + 1
                lines.append(f"{ANALYZER}: {f['findingType']:<16} {where}: {f['issueCode']}: {f['findingDetails']} "
                             f"({f.get('learnMoreLink', '')})")
            token = page.get("nextToken")
            if not token:
                break
    summary = ", ".join(f"{n} {kind.lower().replace('_', ' ')}" for kind, n in counts.items())
    lines.append(f"{ANALYZER}: {len(policies)} policies validated: {summary}")
    return lines, counts["ERROR"]


CHECKS = (("bootstrap", check_bootstrap), ("lambda-concurrency", check_lambda_concurrency),
          ("fargate-vcpu", check_fargate_vcpu), ("retained-names", check_retained_names),
          ("engine-version", check_engine_version))


def run_checks(acct: Account, templates: Templates, env: str, change_set_type: str) -> list[Check]:
    results = []
    for name, check in CHECKS:
        try:
            results.append(check(acct=acct, templates=templates, env=env, change_set_type=change_set_type))
        except NotImplementedByEndpoint as e:
            results.append((WARNING, name, f"not checked: the endpoint does not implement {e}"))
    return results


def format_results(results: list[Check]) -> str:
    return "\n".join(f"preflight: {status:<8} {name}: {message}" for status, name, message in results)


# --- command line ---------------------------------------------------------------------------------------------

def cmd_check(a: argparse.Namespace) -> int:
    results = run_checks(Account(a.region), read_templates(a.template_dir), a.env, a.change_set_type)
    print(format_results(results))
    blocking = [name for status, name, _ in results if status == BLOCKING]
    if blocking:
        raise errors.InputError(f"preflight: {', '.join(blocking)} blocking (above); nothing was changed")
    return errors.EXIT_OK


def cmd_validate_policies(a: argparse.Namespace) -> int:
    try:
        lines, error_count = validate_policies(Account(a.region), read_templates(a.template_dir))
    except NotImplementedByEndpoint as e:
        print(f"{ANALYZER}: not checked: the endpoint does not implement {e}")
        return errors.EXIT_OK
    print("\n".join(lines))
    if error_count:
        raise errors.InputError(f"{ANALYZER}: {error_count} policy error(s) (above); nothing was changed")
    return errors.EXIT_OK


def cmd_retained_log_groups(a: argparse.Namespace) -> int:
    print("\n".join(existing_retained_log_groups(Account(a.region), read_templates(a.template_dir))))
    return errors.EXIT_OK


def cmd_remove_retained(a: argparse.Namespace) -> int:
    acct = Account(a.region)
    logs = acct.client("logs")
    for group in _existing_retained(acct, read_templates(a.template_dir)):
        name = group["logGroupName"]
        if group.get("deletionProtectionEnabled"):  # prod's are protected (blocks.encrypted_log_group)
            logs.put_log_group_deletion_protection(logGroupIdentifier=name, deletionProtectionEnabled=False)
        logs.delete_log_group(logGroupName=name)
        print(f"deleted {name}")
    return errors.EXIT_OK


def _main(argv: list[str]) -> int:
    from deploytools.cfn import aws_errors_as_pipeline_errors, command_parser

    p, sub = command_parser("deploytools.preflight", __doc__)
    s = sub.add_parser("check")
    s.add_argument("--env", required=True)
    s.add_argument("--change-set-type", choices=("CREATE", "UPDATE"), required=True)
    s.set_defaults(func=cmd_check)
    for name, func in (("retained-log-groups", cmd_retained_log_groups), ("remove-retained", cmd_remove_retained),
                       ("validate-policies", cmd_validate_policies)):
        s = sub.add_parser(name)
        s.set_defaults(func=func)
    for s in sub.choices.values():
        s.add_argument("--template-dir", required=True)
        s.add_argument("--region")
    a = p.parse_args(argv)
    return aws_errors_as_pipeline_errors(a.func, a)


def main(argv: list[str] | None = None) -> int:
    return errors.run(_main, sys.argv[1:] if argv is None else argv, "deploytools.preflight",
                      interrupted="its checks change nothing; remove-retained leaves deleted what it deleted (each "
                                  "`deleted` line above): run it again for the rest")


if __name__ == "__main__":
    sys.exit(main())
