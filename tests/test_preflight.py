"""deploytools.preflight: the account against an environment's templates, one line per check.

Against moto (mock_aws) where it models the API: IAM (the service-linked role), API Gateway's account
setting, CloudWatch Logs (retained log groups), and the removal of those groups. With botocore's Stubber
where moto 5.2.5 does not: Lambda's GetAccountSettings, Service Quotas for Fargate, RDS's
DescribeDBEngineVersions, IAM Access Analyzer's ValidatePolicy (deploy.sh --plan) (moto answers these "not
implemented": the preflight then warns "not checked", also tested).
"""

from __future__ import annotations

import pytest
from botocore.stub import Stubber

from deploytools import bootstrap, preflight
from generator import aws_facts, config, errors

REGION = "ap-northeast-1"
ROOT_TEMPLATES = "templates"


@pytest.fixture
def acct(moto_account):
    return moto_account


def prod():
    return preflight.read_templates(f"{ROOT_TEMPLATES}/prod")


def by_name(results):
    return {name: (status, message) for status, name, message in results}


# --- moto ------------------------------------------------------------------------------------------------------

def test_moto_without_bootstrap_the_bootstrap_check_blocks_naming_the_command(acct):
    status, _, message = preflight.check_bootstrap(acct, "dev")
    assert status == preflight.BLOCKING
    assert aws_facts.ECS_SERVICE_LINKED_ROLE in message and "./deploy.sh --bootstrap --env dev" in message


def test_moto_after_bootstrap_the_bootstrap_check_is_ok(acct):
    bootstrap.run(acct, "some-artifact-bucket")
    assert preflight.check_bootstrap(acct, "dev")[0] == preflight.OK


def test_moto_a_retained_log_group_blocks_a_create_not_an_update_and_remove_retained_clears_it(acct, capsys):
    templates = prod()
    [first, *_] = preflight.retained_log_group_names(templates)
    acct.client("logs").create_log_group(logGroupName=first)
    status, _, message = preflight.check_retained_names(acct, templates, "prod", "CREATE")
    assert status == preflight.BLOCKING and first in message and "--remove-retained" in message
    assert preflight.check_retained_names(acct, templates, "prod", "UPDATE")[0] == preflight.OK
    assert preflight.existing_retained_log_groups(acct, templates) == [first]
    assert preflight.main(["remove-retained", "--template-dir", f"{ROOT_TEMPLATES}/prod", "--region", REGION]) == 0
    assert capsys.readouterr().out == f"deleted {first}\n"
    assert preflight.check_retained_names(acct, templates, "prod", "CREATE")[0] == preflight.OK


def test_moto_apis_moto_lacks_are_warnings_saying_not_checked(acct):
    bootstrap.run(acct, "some-artifact-bucket")
    results = by_name(preflight.run_checks(acct, prod(), "prod", "CREATE"))
    assert results["bootstrap"][0] == results["retained-names"][0] == preflight.OK
    for name in ("lambda-concurrency", "fargate-vcpu", "engine-version"):
        assert results[name][0] == preflight.WARNING and "not checked" in results[name][1], name


def test_moto_a_blocking_check_exits_2_after_printing_every_line(acct, capsys):
    code = preflight.main(["check", "--env", "dev", "--template-dir", f"{ROOT_TEMPLATES}/dev", "--region", REGION,
                           "--change-set-type", "CREATE"])
    out, err = capsys.readouterr()
    assert code == errors.EXIT_USAGE == 2
    assert len(out.splitlines()) == len(preflight.CHECKS)
    assert all(line.startswith("preflight: ") for line in out.splitlines())
    assert err.startswith("error: preflight: bootstrap blocking")


# --- Stubber: Lambda concurrency -------------------------------------------------------------------------------

def lambda_stub(acct, quota, unreserved, held=None):
    lam = acct.client("lambda")
    stub = Stubber(lam)
    stub.add_response("get_account_settings", {"AccountLimit": {
        "ConcurrentExecutions": quota, "UnreservedConcurrentExecutions": unreserved}})
    if held is None:
        stub.add_client_error("get_function_concurrency", "ResourceNotFoundException", "no function")
    else:
        stub.add_response("get_function_concurrency", {"ReservedConcurrentExecutions": held},
                          {"FunctionName": "video-processing-api-prod"})
    return stub


def test_stubber_a_new_accounts_reduced_quota_blocks_the_prod_reservation(acct):
    with lambda_stub(acct, quota=10, unreserved=10):
        status, _, message = preflight.check_lambda_concurrency(acct, prod())
    assert status == preflight.BLOCKING
    reserved = config.get("prod").api_reserved_concurrency
    assert f"reserving {reserved} would leave {10 - reserved} unreserved" in message
    assert aws_facts.LAMBDA_CONCURRENCY_QUOTA in message and f"at least {reserved + 100}" in message


def test_stubber_the_default_quota_holds_the_reservation(acct):
    with lambda_stub(acct, quota=1000, unreserved=1000):
        assert preflight.check_lambda_concurrency(acct, prod())[0] == preflight.OK


def test_stubber_the_functions_own_reservation_counts_as_available(acct):
    """An update: what the function reserves already comes back when it reserves anew."""
    with lambda_stub(acct, quota=400, unreserved=200, held=200):
        assert preflight.check_lambda_concurrency(acct, prod()) == (
            preflight.OK, "lambda-concurrency", "reserving 200 leaves 200 of 400 unreserved")


def test_dev_reserves_nothing_and_asks_lambda_nothing(acct):
    dev = preflight.read_templates(f"{ROOT_TEMPLATES}/dev")
    with Stubber(acct.client("lambda")):  # any call would fail: nothing is stubbed
        assert preflight.check_lambda_concurrency(acct, dev)[0] == preflight.OK


# --- Stubber: Fargate vCPU quota -------------------------------------------------------------------------------

def quota_stub(acct, code, value, applied=True):
    stub = Stubber(acct.client("service-quotas"))
    if applied:
        stub.add_response("get_service_quota", {"Quota": {"Value": value}},
                          {"ServiceCode": "fargate", "QuotaCode": code})
    else:
        stub.add_client_error("get_service_quota", "NoSuchResourceException", "not applied")
        stub.add_response("get_aws_default_service_quota", {"Quota": {"Value": value}},
                          {"ServiceCode": "fargate", "QuotaCode": code})
    return stub


def test_stubber_prod_checks_the_on_demand_quota_against_its_peak(acct):
    cfg = config.get("prod")
    need = cfg.max_concurrent_videos * cfg.task_cpu / 1024
    with quota_stub(acct, aws_facts.FARGATE_ON_DEMAND_VCPU_QUOTA, need):
        assert preflight.check_fargate_vcpu(acct, prod(), "prod")[0] == preflight.OK
    with quota_stub(acct, aws_facts.FARGATE_ON_DEMAND_VCPU_QUOTA, need - 1, applied=False):
        status, _, message = preflight.check_fargate_vcpu(acct, prod(), "prod")
    assert status == preflight.WARNING and "L-3032A538" in message and f"needs {need:g}" in message
    assert f"request {cfg.fargate_vcpu_quota:g} (generator/config.py assumes {cfg.fargate_vcpu_quota}" in message
    with quota_stub(acct, aws_facts.FARGATE_ON_DEMAND_VCPU_QUOTA, 0):
        assert preflight.check_fargate_vcpu(acct, prod(), "prod")[0] == preflight.BLOCKING


def test_stubber_dev_runs_on_spot_and_checks_the_spot_quota(acct):
    dev = preflight.read_templates(f"{ROOT_TEMPLATES}/dev")
    with quota_stub(acct, aws_facts.FARGATE_SPOT_VCPU_QUOTA, 6):
        status, _, message = preflight.check_fargate_vcpu(acct, dev, "dev")
    assert status == preflight.OK and "Spot" in message


# --- Stubber: engine version -----------------------------------------------------------------------------------

def test_stubber_an_offered_major_is_ok_and_a_retired_one_blocks_a_create(acct):
    rds = acct.client("rds")
    params = {"Engine": "postgres", "EngineVersion": "17", "DefaultOnly": True}
    with Stubber(rds) as stub:
        stub.add_response("describe_db_engine_versions",
                          {"DBEngineVersions": [{"Engine": "postgres", "EngineVersion": "17.6"}]}, params)
        assert preflight.check_engine_version(acct, prod(), "CREATE") == (
            preflight.OK, "engine-version", "postgres 17 (creates 17.6) offered")
    with Stubber(rds) as stub:
        for _ in range(2):
            stub.add_response("describe_db_engine_versions", {"DBEngineVersions": []}, params)
        assert preflight.check_engine_version(acct, prod(), "CREATE")[0] == preflight.BLOCKING
        assert preflight.check_engine_version(acct, prod(), "UPDATE")[0] == preflight.WARNING


def test_stubber_another_aws_error_is_not_hidden_as_not_checked(acct):
    with Stubber(acct.client("rds")) as stub:
        stub.add_client_error("describe_db_engine_versions", "AccessDenied", "no")
        with pytest.raises(Exception, match="AccessDenied"):
            preflight.check_engine_version(acct, prod(), "CREATE")


# --- IAM Access Analyzer (deploy.sh --plan): botocore's Stubber, and moto for "not checked" ----------------------

ANALYZED_ACCOUNT = "210987654321"


@pytest.fixture
def analyzed(monkeypatch):
    """An Account whose STS and Access Analyzer clients are stubbed (no network, no credentials needed)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    acct = bootstrap.Account(REGION)
    sts = Stubber(acct.client("sts"))
    sts.add_response("get_caller_identity", {"Account": ANALYZED_ACCOUNT, "UserId": "u",
                                             "Arn": f"arn:aws:iam::{ANALYZED_ACCOUNT}:user/deployer"})
    sts.activate()
    yield acct, Stubber(acct.client("accessanalyzer"))
    sts.deactivate()


def finding(kind, code):
    return {"findingType": kind, "issueCode": code, "findingDetails": f"{code} details",
            "learnMoreLink": "https://docs.aws.amazon.com/IAM/latest/UserGuide/access-analyzer-reference-policy-checks.html",
            "locations": []}


def stub_every_policy(stub, templates, answers):
    """Expect one ValidatePolicy per policy document, in order, each rendered for the account; answer each with
    `answers(where)` (a list of pages)."""
    policies = preflight.policies_to_validate(templates, REGION, ANALYZED_ACCOUNT)
    for where, kind, resource_type, text in policies:
        pages = answers(where)
        for n, page in enumerate(pages):
            expected = {"policyDocument": text, "policyType": kind,
                        **({"validatePolicyResourceType": resource_type} if resource_type else {}),
                        **({"nextToken": f"page{n}"} if n else {})}
            stub.add_response("validate_policy", {**page, **({"nextToken": f"page{n + 1}"} if n + 1 < len(pages)
                                                              else {})}, expected)
    return policies


def test_every_policy_of_the_templates_goes_to_access_analyzer_rendered_for_the_account(analyzed):
    acct, stub = analyzed
    templates = prod()
    policies = stub_every_policy(stub, templates, lambda where: [{"findings": []}])
    kinds = {(kind, resource_type) for _, kind, resource_type, _ in policies}
    assert {("IDENTITY_POLICY", None), ("RESOURCE_POLICY", "AWS::IAM::AssumeRolePolicyDocument"),
            ("RESOURCE_POLICY", None)} <= kinds, "identity, trust and key/resource/endpoint policies"
    wheres = " ".join(where for where, *_ in policies)
    assert "KeyPolicy" in wheres and "S3GatewayEndpoint PolicyDocument" in wheres and "FileSystemPolicy" in wheres
    assert all(ANALYZED_ACCOUNT in text or "Service" in text for *_, text in policies if '"Resource"' in text)
    assert not any("${" in text or '"Ref"' in text or "Fn::" in text for *_, text in policies), "rendered"
    with stub:
        lines, error_count = preflight.validate_policies(acct, templates)
        stub.assert_no_pending_responses()
    assert error_count == 0 and lines == [f"access-analyzer: {len(policies)} policies validated: 0 error, "
                                          "0 security warning, 0 warning, 0 suggestion"]


def test_access_analyzer_findings_are_printed_one_a_line_across_pages_and_an_error_blocks(analyzed, monkeypatch,
                                                                                          capsys):
    acct, stub = analyzed
    templates = prod()

    def answers(where):
        if where.startswith("network.json S3GatewayEndpoint"):
            return [{"findings": [finding("SECURITY_WARNING", "EXTERNAL_PRINCIPAL")]},
                    {"findings": [finding("ERROR", "INVALID_ARN_RESOURCE")]}]  # a second page
        return [{"findings": []}]

    stub_every_policy(stub, templates, answers)
    monkeypatch.setattr(preflight, "Account", lambda region: acct)
    with stub:
        code = preflight.main(["validate-policies", "--template-dir", f"{ROOT_TEMPLATES}/prod", "--region", REGION])
    out, err = capsys.readouterr()
    assert code == errors.EXIT_USAGE, "an error blocks, like a blocking preflight check"
    assert ("access-analyzer: SECURITY_WARNING network.json S3GatewayEndpoint PolicyDocument: EXTERNAL_PRINCIPAL: "
            "EXTERNAL_PRINCIPAL details (https://docs.aws.amazon.com/") in out
    assert ("access-analyzer: ERROR            network.json S3GatewayEndpoint PolicyDocument: "
            "INVALID_ARN_RESOURCE") in out
    assert "1 error, 1 security warning" in out
    assert err.strip() == "error: access-analyzer: 1 policy error(s) (above); nothing was changed"


def test_access_analyzer_warnings_alone_do_not_block(analyzed, monkeypatch, capsys):
    acct, stub = analyzed
    stub_every_policy(stub, prod(), lambda where: [{"findings": [finding("SUGGESTION", "EMPTY_ARRAY_ACTION")]}]
                      if "KeyPolicy" in where else [{"findings": []}])
    monkeypatch.setattr(preflight, "Account", lambda region: acct)
    with stub:
        assert preflight.main(["validate-policies", "--template-dir", f"{ROOT_TEMPLATES}/prod", "--region",
                               REGION]) == 0
    assert "SUGGESTION" in capsys.readouterr().out


def test_moto_access_analyzer_is_not_checked_against_an_endpoint_without_it(acct, monkeypatch, capsys):
    monkeypatch.setattr(preflight, "Account", lambda region: acct)
    assert preflight.main(["validate-policies", "--template-dir", f"{ROOT_TEMPLATES}/dev", "--region", REGION]) == 0
    assert capsys.readouterr().out.startswith("access-analyzer: not checked: the endpoint does not implement")
