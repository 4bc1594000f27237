"""Review diff blind spots: broken exports, resource permissions and API authorisation, probable renames."""

from __future__ import annotations

from test_diff import find, generated, new, old, resource  # noqa: F401 - fixtures

from generator.diff import REPLACED, diff_templates, render

ENV = "dev"


def exported(templates: dict[str, dict]) -> tuple[str, str, dict]:
    """(template key, output name, output) of the first exported output."""
    for key, t in sorted(templates.items()):
        for name, o in sorted((t.get("Outputs") or {}).items()):
            if "Export" in o:
                return key, name, o
    raise LookupError("no exported output")


def test_a_removed_exported_output_is_flagged_at_the_top(old, new):  # noqa: F811
    key, name, _ = exported(new)
    del new[key]["Outputs"][name]
    report = diff_templates(old, new)
    [e] = report.exports
    assert (e.stack, e.output, e.action) == (key, name, "removed")
    text = render(report, "text")
    assert text.index("EXPORTS BROKEN: 1") < text.index(f"== {ENV} ==") and f"output {name}: export" in text
    assert "Exports broken" in render(report, "markdown")


def test_a_renamed_export_is_flagged_but_an_export_moved_to_another_output_is_not(old, new):  # noqa: F811
    key, name, output = exported(new)
    output["Export"] = {"Name": "something-else"}
    [e] = diff_templates(old, new).exports
    assert (e.action, e.new_export) == ("renamed", "something-else")
    new[key]["Outputs"][name + "Moved"] = {**output, "Export": old[key]["Outputs"][name]["Export"]}
    del new[key]["Outputs"][name]
    assert diff_templates(old, new).exports == []


def lambda_permission(templates):
    return find(templates, "AWS::Lambda::Permission")


def test_a_widened_lambda_permission_is_a_widening_resource_policy_row(old, new):  # noqa: F811
    _, lid, perm = lambda_permission(new)
    perm["Properties"]["SourceArn"] = {"Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:*:*/*"}
    report = diff_templates(old, new)
    rows = [c for c in report.iam if c.policy == f"{lid} (resource permission)"]
    assert {c.sign for c in rows} == {"+", "-"}
    [added] = [c for c in rows if c.sign == "+"]
    assert added.widens and added.actions == ["lambda:InvokeFunction"] and "execute-api" in added.condition
    assert added.principal == "Service:apigateway.amazonaws.com"
    assert report.permissions_widen and report.verdict.startswith("WIDENS permissions")


def test_dropping_the_source_arn_widens_and_a_new_permission_is_tabled(old, new):  # noqa: F811
    key, _, perm = lambda_permission(new)
    del perm["Properties"]["SourceArn"]
    assert diff_templates(old, new).permissions_widen
    new[key]["Resources"]["Extra"] = {"Type": "AWS::Lambda::Permission", "Properties": {
        "Action": "lambda:InvokeFunction", "FunctionName": "f", "Principal": "*"}}
    extra = [c for c in diff_templates(old, new).iam if c.policy == "Extra (resource permission)"]
    assert [(c.sign, c.principal, c.widens) for c in extra] == [("+", "*", True)]


def test_api_method_opened_to_anyone_widens_and_closing_it_does_not(old, new):  # noqa: F811
    _, lid, method = find(new, "AWS::ApiGateway::Method")
    assert method["Properties"]["AuthorizationType"] == "AWS_IAM"
    method["Properties"]["AuthorizationType"] = "NONE"
    opened = diff_templates(old, new)
    [plus] = [c for c in opened.iam if c.sign == "+"]
    assert (plus.policy, plus.principal, plus.actions, plus.widens) == (
        f"{lid} (authorization)", "*", ["execute-api:Invoke"], True)
    closed = diff_templates(new, old)  # the reverse change: anyone -> signed callers only
    assert closed.iam and not closed.permissions_widen


def test_a_near_identical_resource_under_a_new_logical_id_is_a_probable_rename(old, new):  # noqa: F811
    key, lid, _ = find(new, "AWS::Logs::LogGroup")
    moved = new[key]["Resources"].pop(lid)
    moved["Properties"]["RetentionInDays"] = 400  # nearly the same properties
    new[key]["Resources"][lid + "V2"] = moved
    rc = resource(diff_templates(old, new), key, lid + "V2")
    assert (rc.action, rc.replacement, rc.old_logical_id) == ("renamed", REPLACED, lid)
    assert "probable rename" in rc.reason and "stack refactor" in rc.reason and "replaces it" in rc.reason


def test_a_lone_pair_that_differs_a_lot_is_paired_but_not_called_a_probable_rename():
    def t(lid: str, props: dict) -> dict:
        return {"Resources": {lid: {"Type": "AWS::SNS::Topic", "Properties": props}}}
    before = t("A", {"TopicName": "a", "DisplayName": "a", "FifoTopic": False})
    after = t("B", {"TopicName": "b", "DisplayName": "b", "FifoTopic": False})
    [rc] = diff_templates({"x/a.json": before}, {"x/a.json": after}).stacks[0].resources
    assert rc.action == "renamed" and "probable rename" not in rc.reason
