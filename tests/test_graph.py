"""The template graph (generator/graph.py): what feeds a value, through the parent's wiring, on tiny templates and on
every environment's generated templates."""

from __future__ import annotations

import pytest

from generator import contracts, graph


def tiny() -> dict:
    """A parent wiring two children: `store` makes a bucket and a name, `reader` receives both and the parent's
    deploy-time parameter Email."""
    store = {"Parameters": {"Email": {"Type": "String"}},
             "Resources": {"Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "media-dev"}},
                           "Topic": {"Type": "AWS::SNS::Topic", "Properties": {}}},
             "Outputs": {"BucketArn": {"Value": {"Fn::GetAtt": ["Bucket", "Arn"]}},
                         "BucketName": {"Value": "media-dev"},
                         "TopicArn": {"Value": {"Ref": "Topic"}}}}
    reader = {"Parameters": {"BucketArn": {"Type": "String"}, "BucketName": {"Type": "String"},
                             "TopicArn": {"Type": "String"}, "Email": {"Type": "String"}},
              "Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {}}}}
    stack = "AWS::CloudFormation::Stack"
    main = {"Parameters": {"Email": {"Type": "String"}}, "Resources": {
        "StoreStack": {"Type": stack, "Properties": {"TemplateURL": "https://bucket.s3.amazonaws.com/build/store.json",
                                                     "Parameters": {"Email": {"Ref": "Email"}}}},
        "ReaderStack": {"Type": stack, "Properties": {"TemplateURL": "reader.json", "Parameters": {
            "BucketArn": {"Fn::GetAtt": ["StoreStack", "Outputs.BucketArn"]},
            "BucketName": {"Fn::GetAtt": "StoreStack.Outputs.BucketName"},
            "TopicArn": {"Fn::GetAtt": ["StoreStack", "Outputs.TopicArn"]},
            "Email": {"Ref": "Email"}}}}}}
    return {"main": main, "store": store, "reader": reader}


def test_nested_stacks_name_each_child_by_its_template_file():
    assert graph.nested_stacks(tiny()["main"]) == {"StoreStack": "store", "ReaderStack": "reader"}
    assert graph.nested_stacks({"Resources": {"S": {"Type": graph.NESTED_STACK_TYPE, "Properties": {
        "TemplateURL": {"Ref": "Url"}}}}}) == {}, "an intrinsic URL names no template of the set"


def test_feeder_is_the_output_behind_a_parameter_and_none_for_a_deploy_time_one():
    stacks = tiny()
    assert graph.feeder(stacks, "reader", "BucketArn") == ("store", "BucketArn")
    assert graph.feeder(stacks, "reader", "BucketName") == ("store", "BucketName"), "GetAtt in its dotted form"
    assert graph.feeder(stacks, "reader", "Email") is None
    assert graph.wiring(stacks, "reader", "Email") == {"Ref": "Email"}


def test_trace_follows_a_sub_through_the_parent_to_the_resource_and_its_attribute():
    value = {"Fn::Sub": ["${BucketArn}/* ${Local} ${AWS::Region} ${Email}", {"Local": {"Ref": "Queue"}}]}
    assert graph.trace(tiny(), "reader", value) == {
        ("store", "Bucket", "Arn"), ("reader", "Queue", ""), ("main", "Email", "")}
    assert graph.sources(tiny(), "reader", value) == {("store", "Bucket"), ("reader", "Queue"), ("main", "Email")}


def test_a_value_of_the_parent_itself_names_the_nested_stack():
    """The parent's own Outputs surface a stack's Output: that stack is what they are built from."""
    surfaced = {"Fn::GetAtt": ["StoreStack", "Outputs.BucketArn"]}
    assert graph.sources(tiny(), "main", surfaced) == {("main", "StoreStack")}
    assert graph.resolve(tiny(), "main", surfaced) == ("main", "StoreStack")


def test_resolve_names_one_resource_or_nothing():
    stacks = tiny()
    assert graph.resolve(stacks, "reader", {"Ref": "TopicArn"}) == ("store", "Topic")
    assert graph.resolve(stacks, "reader", {"Ref": "BucketArn"}) == ("store", "Bucket")
    assert graph.resolve(stacks, "reader", {"Ref": "Email"}) is None, "a deploy-time parameter is no resource"
    assert graph.resolve(stacks, "reader", {"Ref": "BucketName"}) is None, "a literal is no resource"
    assert graph.resolve(stacks, "reader", {"Fn::Sub": "${TopicArn}"}) is None, "only a Ref or GetAtt"


def test_literal_is_the_string_an_output_carries_through_the_parent():
    stacks = tiny()
    assert graph.literal(stacks, "reader", {"Ref": "BucketName"}) == "media-dev"
    assert graph.literal(stacks, "reader", {"Ref": "TopicArn"}) is None
    assert graph.literal(stacks, "reader", {"Ref": "Email"}) is None


def test_references_skip_sub_literals_and_local_variables_and_mark_imports():
    value = {"Fn::Sub": ["${!Literal} ${Local} ${A.Arn} ${B}", {"Local": {"Fn::ImportValue": "shared"}}]}
    assert sorted((n, a) for _, n, a in graph.references(value)) == [("A", "Arn"), ("B", ""), ("shared", graph.IMPORT)]


def test_each_resource_visits_every_resource_in_name_order():
    found = [(t, i) for t, i, _ in graph.each_resource(tiny())]
    assert found == sorted(found) and ("store", "Bucket") in found and ("main", "StoreStack") in found
    assert [i for _, i, _ in graph.each_resource(tiny(), "AWS::SQS::Queue")] == ["Queue"]


# --------------------------------------------------------------------------------------------------
# The generated templates


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_every_child_parameter_is_fed_by_an_existing_output_or_a_parameter_of_the_parent(templates, env):
    stacks = templates[env]
    children = set(graph.nested_stacks(stacks[graph.PARENT]).values())
    assert children == set(stacks) - {graph.PARENT}
    fed = 0
    for child in sorted(children):
        for name in stacks[child].get("Parameters", {}):
            feeder = graph.feeder(stacks, child, name)
            if feeder is None:
                wiring = graph.wiring(stacks, child, name)
                assert set(wiring or {}) == {"Ref"} and wiring["Ref"] in stacks[graph.PARENT]["Parameters"], (
                    f"{child}.{name}: fed neither by an Output nor by a parameter of the parent")
            else:
                producer, output = feeder
                assert output in stacks[producer]["Outputs"], f"{child}.{name}: {producer} has no Output {output}"
                fed += 1
    assert fed > 10, "most parameters are another tier's outputs"


def test_resolve_follows_parameters_through_the_parent(templates):
    """The task security group, as the workflow sees it, is the network tier's resource."""
    assert graph.resolve(templates["dev"], "workflow", {"Ref": contracts.TASK_SECURITY_GROUP_ID.name}) == (
        "network", "TaskSecurityGroup")
