"""`python -m generator diff`: what a reviewer is told about a template change.

Each test crafts one change on a copy of the generated dev templates (`<env>/<file>` -> template)
and checks the label the review diff gives it.
"""

from __future__ import annotations

import copy
import json
import subprocess

import boto3
import pytest
from moto import mock_aws

from generator.aws_facts import create_only
from generator.diff import MAY_BE_REPLACED, REPLACED, diff_templates, render
from generator.diff import cli as diff_cli

ENV = "dev"


@pytest.fixture(scope="module")
def generated() -> dict[str, dict]:
    return diff_cli.generate([ENV])


@pytest.fixture
def old(generated) -> dict[str, dict]:
    return copy.deepcopy(generated)


@pytest.fixture
def new(generated) -> dict[str, dict]:
    return copy.deepcopy(generated)


def find(templates: dict[str, dict], rtype: str) -> tuple[str, str, dict]:
    """(template key, logical ID, resource) of the first resource of a type."""
    for key, t in sorted(templates.items()):
        for lid, res in sorted(t.get("Resources", {}).items()):
            if res["Type"] == rtype:
                return key, lid, res
    raise LookupError(rtype)


def stack(report, key):
    return next(sd for sd in report.stacks if sd.key == key)


def resource(report, key, lid):
    return next(rc for rc in stack(report, key).resources if rc.logical_id == lid)


# ---------------------------------------------------------------- no change

def test_no_change_reports_every_stack_unchanged_in_one_line(old, new):
    report = diff_templates(old, new, "HEAD", "generated now")
    assert not report.has_changes
    assert {sd.status for sd in report.stacks} == {"unchanged"}
    assert (report.iam, report.network, report.data_loss, report.replacements) == ([], [], [], [])
    text = render(report, "text")
    for key in old:
        assert f"{key.split('/')[1]}: unchanged" in text
    assert "\033[" not in text  # no colour unless asked for (a terminal)


def test_stacks_are_listed_parent_first(old, new):
    assert next(sd.file for sd in diff_templates(old, new).stacks) == "main.json"


# ---------------------------------------------------------------- replacement

def test_renamed_logical_id_is_a_replacement_of_the_same_kind(old, new):
    key, lid, res = find(new, "AWS::Logs::LogGroup")
    new[key]["Resources"]["Renamed" + lid] = new[key]["Resources"].pop(lid)
    report = diff_templates(old, new)
    rc = resource(report, key, "Renamed" + lid)
    assert (rc.action, rc.replacement, rc.old_logical_id, rc.type) == ("renamed", REPLACED, lid, res["Type"])
    assert rc.reason.startswith(f"logical ID changed from {lid}: probable rename (100% of property values equal)")
    # Not also reported as an unrelated removal and addition.
    assert [r.logical_id for r in stack(report, key).resources if r.action in ("added", "removed")] == []
    # A log group is stateful: its logs stay behind in the old group.
    assert [(r.logical_id, r.risk) for r in report.data_loss] == [("Renamed" + lid, REPLACED)]


def flip_database(old, new, prop: str):
    """Negate a boolean property of the storage tier's database; returns (report, key, logical ID, new database)."""
    key, lid, db = find(new, "AWS::RDS::DBInstance")
    db["Properties"][prop] = not db["Properties"].get(prop, False)
    return diff_templates(old, new), key, lid, db


def test_create_only_change_on_the_database_replaces_it_and_is_a_data_loss_risk(old, new):
    report, key, lid, db = flip_database(old, new, "StorageEncrypted")
    rc = resource(report, key, lid)
    assert (rc.action, rc.replacement) == ("changed", REPLACED)
    assert rc.reason == "create-only: Properties.StorageEncrypted"
    [change] = rc.changes
    assert (change.path, change.new, change.replacement) == ("Properties.StorageEncrypted",
                                                             db["Properties"]["StorageEncrypted"], REPLACED)
    risks = {r.logical_id: r for r in report.data_loss}
    risk = risks.pop(lid)
    assert (risk.stack, risk.logical_id, risk.risk) == (key, lid, REPLACED)
    # The log groups RDS exports to are named after the identifier: a new database writes to new groups, and the
    # diff says so as for any log group whose name changes (issue 25).
    assert {(r.logical_id, r.risk) for r in risks.values()} == {
        ("DatabasePostgresqlLogGroup", REPLACED), ("DatabaseUpgradeLogGroup", REPLACED)}
    policy = old[key]["Resources"][lid].get("UpdateReplacePolicy", "Delete")
    assert risk.retained == ("" if policy == "Delete" else policy)
    assert render(report, "text").index("DATA-LOSS RISK") < render(report, "text").index(f"== {ENV} ==")


def test_conditionally_create_only_change_may_replace(old, new):
    report, key, lid, _ = flip_database(old, new, "MultiAZ")
    rc = resource(report, key, lid)
    assert (rc.replacement, rc.reason) == (MAY_BE_REPLACED, "conditionally create-only: Properties.MultiAZ")
    assert [r.risk for r in report.data_loss] == [MAY_BE_REPLACED] * 3  # the database and its two log groups
    assert "DBInstance) MAY BE REPLACED" in render(report, "text")


def test_an_in_place_update_is_no_replacement(old, new):
    key, lid, group = find(new, "AWS::Logs::LogGroup")
    group["Properties"]["RetentionInDays"] = 3653
    rc = resource(diff_templates(old, new), key, lid)
    assert (rc.action, rc.replacement, rc.reason) == ("changed", None, "")
    assert [(c.path, c.new) for c in rc.changes] == [("Properties.RetentionInDays", 3653)]


def test_replacement_levels_come_from_cfn_lint_schemas():
    always, conditional = create_only("AWS::RDS::DBInstance")
    assert ("DBName",) in always and ("StorageEncrypted",) in always
    assert ("MultiAZ",) in conditional
    assert create_only("AWS::No::Such") == ((), ())


def test_replacing_a_nested_stack_flags_the_stateful_resources_inside(old, new):
    resources = new[f"{ENV}/main.json"]["Resources"]
    resources["WorkflowTier"] = resources.pop("WorkflowStack")
    report = diff_templates(old, new)
    rc = resource(report, f"{ENV}/main.json", "WorkflowTier")
    assert (rc.action, rc.replacement) == ("renamed", REPLACED)
    inside = {r.logical_id for r in report.data_loss if r.stack == f"{ENV}/workflow.json"}
    assert {"StateMachineLogGroup", "WorkflowLogsKey"} <= inside


def test_removing_a_tier_lists_each_lost_resource_once(old, new):
    del new[f"{ENV}/main.json"]["Resources"]["WorkflowStack"]
    del new[f"{ENV}/workflow.json"]
    report = diff_templates(old, new)
    assert stack(report, f"{ENV}/workflow.json").status == "removed"
    lost = [r.logical_id for r in report.data_loss]
    assert len(lost) == len(set(lost)) and "StateMachineLogGroup" in lost
    assert {r.risk for r in report.data_loss} == {"removed"}


# ---------------------------------------------------------------- security

def test_added_iam_action_is_one_widening_statement_row(old, new):
    key = f"{ENV}/workflow.json"
    policy = new[key]["Resources"]["StateMachineRole"]["Properties"]["Policies"][0]
    run_task = next(s for s in policy["PolicyDocument"]["Statement"] if "ecs:RunTask" in s["Action"])
    run_task["Action"].append("ecs:TagResource")
    report = diff_templates(old, new)
    [row] = report.iam
    assert (row.sign, row.stack, row.effect, row.actions, row.resources, row.widens) == (
        "+", key, "Allow", ["ecs:TagResource"], ["TaskDefinition"], True)
    assert row.policy == f"StateMachineRole (identity {policy['PolicyName']})"
    assert "ecs:cluster" in row.condition
    assert report.permissions_widen and report.verdict == "WIDENS permissions"


def test_removed_iam_action_narrows(old, new):
    key = f"{ENV}/workflow.json"
    policy = new[key]["Resources"]["StateMachineRole"]["Properties"]["Policies"][0]
    follow = next(s for s in policy["PolicyDocument"]["Statement"] if "ecs:StopTask" in s["Action"])
    follow["Action"].remove("ecs:StopTask")
    report = diff_templates(old, new)
    assert [(r.sign, r.actions, r.widens) for r in report.iam] == [("-", ["ecs:StopTask"], False)]
    assert not report.permissions_widen and "do not widen" in report.verdict


def test_trust_policy_and_resource_policy_changes_are_tabled(old, new):
    compute, notification = f"{ENV}/compute.json", f"{ENV}/notification.json"
    trust = new[compute]["Resources"]["TaskRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    trust["Principal"]["Service"] = ["ecs-tasks.amazonaws.com", "lambda.amazonaws.com"]
    _, key_id, key = find({notification: new[notification]}, "AWS::KMS::Key")
    key["Properties"]["KeyPolicy"]["Statement"].append(
        {"Effect": "Allow", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*"})
    rows = {(r.policy, r.principal, tuple(r.actions), r.widens) for r in diff_templates(old, new).iam if r.sign == "+"}
    assert ("TaskRole (trust AssumeRolePolicyDocument)", "Service:ecs-tasks.amazonaws.com Service:lambda.amazonaws.com",
            ("sts:AssumeRole",), True) in rows
    assert (f"{key_id} (resource KeyPolicy)", "*", ("kms:Decrypt",), True) in rows


def test_statements_differing_only_in_principal_come_out_in_a_fixed_order(old, new):
    notification = f"{ENV}/notification.json"
    _, _key_id, key = find({notification: new[notification]}, "AWS::KMS::Key")
    for service in ("z.amazonaws.com", "a.amazonaws.com", "m.amazonaws.com"):
        key["Properties"]["KeyPolicy"]["Statement"].append(
            {"Effect": "Allow", "Principal": {"Service": service}, "Action": "kms:Decrypt", "Resource": "*"})
    rows = [r.principal for r in diff_templates(old, new).iam]
    assert rows == ["Service:a.amazonaws.com", "Service:m.amazonaws.com", "Service:z.amazonaws.com"]


def test_opened_security_group_port_widens_network_reach(old, new):
    key, lid, group = find(new, "AWS::EC2::SecurityGroup")
    group["Properties"].setdefault("SecurityGroupIngress", []).append(
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "CidrIp": "0.0.0.0/0"})
    report = diff_templates(old, new)
    [row] = report.network
    assert (row.sign, row.rule.group, row.rule.direction, row.rule.protocol, row.rule.ports, row.rule.peer,
            row.widens) == ("+", lid, "ingress", "tcp", "22", "0.0.0.0/0", True)
    assert report.network_widens and report.verdict == "WIDENS network reach"
    # The property change is shown too, next to the security table.
    assert any(c.path.startswith("Properties.SecurityGroupIngress") for c in resource(report, key, lid).changes)


def test_narrowing_a_port_range_does_not_widen(old, new):
    key, lid, group = find(old, "AWS::EC2::SecurityGroup")
    group["Properties"]["SecurityGroupIngress"] = [{"IpProtocol": "tcp", "FromPort": 1024, "ToPort": 2048,
                                                   "CidrIp": "10.0.0.0/8"}]
    new[key]["Resources"][lid]["Properties"]["SecurityGroupIngress"] = [
        {"IpProtocol": "tcp", "FromPort": 1024, "ToPort": 1100, "CidrIp": "10.0.0.0/8"}]
    report = diff_templates(old, new)
    assert sorted((r.sign, r.rule.ports, r.widens) for r in report.network) == [
        ("+", "1024-1100", False), ("-", "1024-2048", False)]
    assert not report.network_widens


# ---------------------------------------------------------------- state machines

def state_machine(templates: dict[str, dict]) -> dict:
    return find(templates, "AWS::StepFunctions::StateMachine")[2]


def test_changed_retry_on_process_video_is_reported_state_by_state(old, new):
    props = state_machine(new)["Properties"]
    props["Definition"]["States"]["ProcessVideo"]["Retry"][0]["MaxAttempts"] = 5
    key, lid, _ = find(new, "AWS::StepFunctions::StateMachine")
    rc = resource(diff_templates(old, new), key, lid)
    assert rc.changes == []  # never the definition as one value
    [state] = rc.workflow.changed
    assert (state.name, state.fields) == ("ProcessVideo", ["Retry"])
    [change] = state.changes
    assert (change.path, change.old, change.new) == ("Retry[0].MaxAttempts", 3, 5)
    assert rc.workflow.added == rc.workflow.removed == []


def test_definition_string_in_fn_sub_is_parsed_too(old, new):
    for side in (old, new):
        props = state_machine(side)["Properties"]
        props["DefinitionString"] = {"Fn::Sub": [json.dumps(props.pop("Definition")), {"Extra": "x"}]}
    definition = json.loads(state_machine(new)["Properties"]["DefinitionString"]["Fn::Sub"][0])
    definition["States"]["ProcessVideo"]["Retry"][0]["IntervalSeconds"] = 60
    definition["States"]["Audit"] = {"Type": "Pass", "End": True}
    state_machine(new)["Properties"]["DefinitionString"]["Fn::Sub"] = [json.dumps(definition), {"Extra": "y"}]
    key, lid, _ = find(new, "AWS::StepFunctions::StateMachine")
    rc = resource(diff_templates(old, new), key, lid)
    assert rc.workflow.added == [("Audit", "Pass")]
    assert [(s.name, s.fields) for s in rc.workflow.changed] == [("ProcessVideo", ["Retry"])]
    # The substitution variables around the string are still compared as properties.
    assert [(c.path, c.old, c.new) for c in rc.changes] == [("Properties.DefinitionString.Fn::Sub[1].Extra", "x", "y")]


def test_definition_string_in_fn_join_is_parsed_with_placeholders():
    definition = {"StartAt": "ProcessVideo", "States": {"ProcessVideo": {
        "Type": "Task", "Resource": "arn:aws:states:::ecs:runTask.sync", "End": True,
        "Parameters": {"Cluster": "CLUSTER"}}}}
    head, tail = json.dumps(definition).split("CLUSTER")

    def machine(cluster_ref: str) -> dict:
        return {"dev/workflow.json": {"Resources": {"StateMachine": {
            "Type": "AWS::StepFunctions::StateMachine",
            "Properties": {"DefinitionString": {"Fn::Join": ["", [head, {"Ref": cluster_ref}, tail]]}}}}}}
    rc = diff_templates(machine("ClusterArn"), machine("OtherClusterArn")).stacks[0].resources[0]
    [state] = rc.workflow.changed
    assert [(c.path, c.old, c.new) for c in state.changes] == [
        ("Parameters.Cluster", "${ClusterArn}", "${OtherClusterArn}")]


def test_removed_state_and_changed_catch(old, new):
    states = state_machine(new)["Properties"]["Definition"]["States"]
    del states["RejectInput"]
    states["ProcessVideo"]["Catch"][0]["ErrorEquals"] = ["States.ALL", "States.Runtime"]
    key, lid, _ = find(new, "AWS::StepFunctions::StateMachine")
    wf = resource(diff_templates(old, new), key, lid).workflow
    assert wf.removed == [("RejectInput", state_machine(old)["Properties"]["Definition"]["States"]
                           ["RejectInput"]["Type"])]
    assert ("ProcessVideo", ["Catch"]) in [(s.name, s.fields) for s in wf.changed]


# ---------------------------------------------------------------- parameters and outputs

def test_added_and_removed_outputs(old, new):
    key = f"{ENV}/notification.json"
    outputs = new[key]["Outputs"]
    removed = sorted(outputs)[0]
    del outputs[removed]
    outputs["AuditTopicArn"] = {"Description": "Audit topic", "Value": {"Ref": "CompletionTopic"}}
    sd = stack(diff_templates(old, new), key)
    assert [(e.name, e.action) for e in sd.outputs] == sorted([("AuditTopicArn", "added"), (removed, "removed")])
    assert sd.resources == [] and sd.status == "changed"


def test_changed_parameter_default(old, new):
    key = f"{ENV}/main.json"
    name = sorted(new[key]["Parameters"])[0]
    new[key]["Parameters"][name]["Default"] = "changed"
    [entry] = stack(diff_templates(old, new), key).parameters
    assert (entry.name, entry.action, [c.path for c in entry.changes]) == (name, "changed", ["Default"])


# ---------------------------------------------------------------- formats

def test_json_output_has_the_documented_shape(old, new):
    key, lid, db = find(new, "AWS::RDS::DBInstance")
    db["Properties"]["DBName"] = "renamed"
    body = json.loads(render(diff_templates(old, new, "HEAD", "generated now"), "json"))
    assert set(body) == {"version", "base", "target", "summary", "data_loss", "consequences", "exports", "drift",
                         "stacks", "security"}
    assert body["version"] == 2
    assert body["summary"]["replaced"] == 1 and body["summary"]["has_changes"] is True
    res = next(r for s in body["stacks"] if f"{s['env']}/{s['stack']}" == key for r in s["resources"])
    assert {k: res[k] for k in ("logical_id", "type", "action", "replacement", "reason")} == {
        "logical_id": lid, "type": "AWS::RDS::DBInstance", "action": "changed", "replacement": REPLACED,
        "reason": "create-only: Properties.DBName"}
    [change] = res["changes"]
    assert (change["path"], change["new"], change["replacement"]) == ("Properties.DBName", "renamed", REPLACED)
    assert body["data_loss"][0]["logical_id"] == lid
    assert set(body["security"]) == {"verdict", "iam", "security_groups"}


def test_markdown_has_tables_ready_for_a_pull_request(old, new):
    _, _, group = find(new, "AWS::EC2::SecurityGroup")
    group["Properties"]["SecurityGroupIngress"] = [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                                                   "CidrIp": "0.0.0.0/0"}]
    md = render(diff_templates(old, new, "HEAD", "generated now"), "markdown")
    assert md.startswith("### Review diff: `HEAD` → `generated now`")
    assert "| +/- | stack | group | direction | protocol/ports | peer | widens |" in md
    assert "| `+` |" in md and "```diff" in md and "**Security:** WIDENS network reach" in md


def test_text_colour_only_when_asked(old, new):
    new[f"{ENV}/main.json"]["Description"] = "changed"
    report = diff_templates(old, new)
    assert "\033[" in render(report, "text", colour=True)
    assert "\033[" not in render(report, "text")


# ---------------------------------------------------------------- command line

@pytest.fixture
def repo(tmp_path, monkeypatch, generated):
    """A git repository whose HEAD commits the generated dev templates; the CLI reads it."""
    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)
    git("init", "-q")
    for key, template in generated.items():
        path = tmp_path / "templates" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(template, indent=2, sort_keys=True) + "\n")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "templates")
    monkeypatch.setattr(diff_cli, "REPO", tmp_path)
    return tmp_path


def test_cli_reads_the_committed_templates_and_exits_0_without_changes(repo, capsys):
    assert diff_cli.main(["--env", ENV, "--fail-on", "any"]) == 0
    assert "no changes in" in capsys.readouterr().out


def test_cli_fail_on_replacement_exits_3_for_a_replaced_resource_on_disk(repo, capsys):
    path = repo / "templates" / ENV / "workflow.json"
    template = json.loads(path.read_text())
    template["Resources"]["StateMachine"]["Properties"]["StateMachineName"] = "renamed-machine"
    path.write_text(json.dumps(template))
    assert diff_cli.main(["--env", ENV, "--worktree", "--format", "json"]) == 0
    assert diff_cli.main(["--env", ENV, "--worktree", "--fail-on", "security"]) == 0
    assert diff_cli.main(["--env", ENV, "--worktree", "--fail-on", "replacement"]) == 3
    assert "--fail-on: 1 resource(s) replaced" in capsys.readouterr().err


def test_cli_bad_revision_exits_2_with_a_clear_message(repo, capsys):
    assert diff_cli.main(["--env", ENV, "--base", "no-such-rev"]) == 2
    assert "unknown git revision 'no-such-rev'" in capsys.readouterr().err


def test_cli_template_that_does_not_parse_exits_2_naming_the_file(repo, capsys):
    path = repo / "templates" / ENV / "workflow.json"
    path.write_text("{not json")
    assert diff_cli.main(["--env", ENV, "--worktree"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: {path}: not valid JSON")
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com",
                    "commit", "-qam", "broken"], check=True)
    assert diff_cli.main(["--env", ENV, "--base", "HEAD"]) == 2
    assert f"error: templates/{ENV}/workflow.json at HEAD: not valid JSON" in capsys.readouterr().err


def test_cli_without_git_exits_2(repo, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(repo / "no-such-dir"))
    assert diff_cli.main(["--env", ENV]) == 2
    assert "error: cannot run git" in capsys.readouterr().err


def test_cli_unknown_environment_exits_2(repo, capsys):
    assert diff_cli.main(["--env", "nope"]) == 2
    assert "unknown environment 'nope'" in capsys.readouterr().err


def test_cli_is_reached_through_python_m_generator(repo, capsys):
    from generator import __main__ as cli
    assert cli.main(["diff", "--env", ENV, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["summary"]["has_changes"] is False


# ---------------------------------------------------------------- --stack (moto)

CHILD = {"Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"VisibilityTimeout": 30}}},
         "Outputs": {"QueueArn": {"Description": "q", "Value": {"Fn::GetAtt": ["Queue", "Arn"]}}}}


def parent(url: str) -> dict:
    return {"Description": "Video processing pipeline (dev)",
            "Resources": {"NotificationStack": {"Type": "AWS::CloudFormation::Stack",
                                                "Properties": {"TemplateURL": url}}}}


@pytest.fixture
def aws(monkeypatch):
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "ap-northeast-1"}.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="artifacts")
        # As `aws cloudformation package` uploads it: the object name says nothing about the tier.
        s3.put_object(Bucket="artifacts", Key="0123abcd.template", Body=json.dumps(CHILD))
        cfn = boto3.client("cloudformation", region_name="ap-northeast-1")
        cfn.create_stack(StackName="video-dev", TemplateBody=json.dumps(
            parent("https://s3.amazonaws.com/artifacts/0123abcd.template")))
        yield cfn


def test_stack_reads_the_parent_and_every_nested_stack(aws):
    known = {"NotificationStack": "notification.json"}
    deployed = diff_cli.load_stack("video-dev", "ap-northeast-1", ENV, known)
    assert sorted(deployed) == [f"{ENV}/main.json", f"{ENV}/notification.json"]
    assert deployed[f"{ENV}/notification.json"]["Resources"] == CHILD["Resources"]


def test_stack_drift_against_the_repository(aws, tmp_path, monkeypatch, capsys):
    child = copy.deepcopy(CHILD)
    child["Resources"]["Queue"]["Properties"]["QueueName"] = "video-processing-dlq-dev"  # create-only
    for name, body in (("main.json", parent("notification.json")), ("notification.json", child)):
        (tmp_path / "templates" / ENV).mkdir(parents=True, exist_ok=True)
        (tmp_path / "templates" / ENV / name).write_text(json.dumps(body))
    monkeypatch.setattr(diff_cli, "REPO", tmp_path)
    assert diff_cli.main(["--stack", "video-dev", "--worktree", "--format", "json"]) == 0  # env from description
    body = json.loads(capsys.readouterr().out)
    assert body["base"] == "stack video-dev (ap-northeast-1)"
    by_stack = {s["stack"]: s for s in body["stacks"]}
    [queue] = by_stack["notification.json"]["resources"]
    assert (queue["logical_id"], queue["replacement"]) == ("Queue", REPLACED)
    assert [r["logical_id"] for r in body["data_loss"]] == ["Queue"]
    # The packaged S3 URL in the deployed parent is not a change: the child it points to is compared itself.
    assert by_stack["main.json"]["resources"] == []


def test_unknown_stack_exits_2(aws, capsys):
    assert diff_cli.main(["--stack", "no-such-stack", "--env", ENV, "--region", "ap-northeast-1"]) == 2
    assert "cannot read stack 'no-such-stack' in ap-northeast-1" in capsys.readouterr().err
    assert diff_cli.main(["--stack", "no-such-stack"]) == 2  # environment lookup fails the same way
    assert "cannot read stack 'no-such-stack'" in capsys.readouterr().err
