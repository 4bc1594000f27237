"""main.json: one nested stack per tier, wired output-to-parameter, with only data-flow dependencies."""

from __future__ import annotations

import pytest

from generator import contracts
from generator.tiers import TIERS

ENVS = ("dev", "staging", "prod")


@pytest.mark.parametrize("env", ENVS)
def test_one_nested_stack_per_tier_tagged_with_project_and_environment(templates, env):
    resources = templates[env]["main"]["Resources"]
    assert sorted(resources) == sorted(tier.title for tier in TIERS)
    for title, stack in resources.items():
        assert stack["Type"] == "AWS::CloudFormation::Stack"
        tags = {t["Key"]: t["Value"] for t in stack["Properties"]["Tags"]}
        assert tags["Project"] == "video-processing" and tags["Environment"] == env


@pytest.mark.parametrize("env", ENVS)
def test_every_child_parameter_is_wired_from_its_producer_or_the_parent(templates, env):
    main = templates[env]["main"]
    producers = {tier.title: tier.name for tier in TIERS}
    for tier in TIERS:
        child_params = set(templates[env][tier.name].get("Parameters", {}))
        wiring = main["Resources"][tier.title]["Properties"].get("Parameters", {})
        assert set(wiring) == child_params
        for param, value in wiring.items():
            if param in main["Parameters"]:
                assert value == {"Ref": param}
            else:
                producer, attribute = value["Fn::GetAtt"]
                assert attribute == f"Outputs.{param}"
                assert param in templates[env][producers[producer]]["Outputs"]


def test_no_depends_on_so_independent_tiers_deploy_in_parallel(templates):
    main = templates["dev"]["main"]["Resources"]
    assert not any("DependsOn" in r for r in main.values())
    # Each tier waits only for the tiers whose outputs it consumes: network and notification for none,
    # storage and cache for network alone, so storage and cache deploy in parallel.
    consumed = {title: sorted({v["Fn::GetAtt"][0] for v in r["Properties"].get("Parameters", {}).values()
                               if "Fn::GetAtt" in v}) for title, r in main.items()}
    assert consumed["NetworkStack"] == [] and consumed["NotificationStack"] == []
    assert consumed["StorageStack"] == ["NetworkStack"] and consumed["CacheStack"] == ["NetworkStack"]
    assert consumed["ComputeStack"] == ["CacheStack", "StorageStack"]


def test_parent_parameters_are_deploy_time_only(templates):
    params = templates["dev"]["main"]["Parameters"]
    assert set(params) == {c.name for c in contracts.DEPLOY_TIME}
    assert params["NotificationEmail"]["Default"] == ""


def test_parent_outputs_the_state_machine_and_topics(templates):
    outputs = templates["dev"]["main"]["Outputs"]
    assert outputs["StateMachineArn"]["Value"] == {"Fn::GetAtt": ["WorkflowStack", "Outputs.StateMachineArn"]}
    assert {"CompletionTopicArn", "ErrorTopicArn"} <= set(outputs)
    assert all(o["Description"] for o in outputs.values())


def test_a_parameter_without_producer_is_a_wiring_error():
    from troposphere import Parameter, Template

    from generator import config, parent

    orphan = Template()
    orphan.add_parameter(Parameter("NobodyMakesThis", Type="String"))
    with pytest.raises(parent.WiringError, match="NobodyMakesThis.*found: none"):
        parent.build(config.get("dev"), {"orphan": orphan})


def test_every_output_of_every_template_has_a_description(templates):
    for env, tiers in templates.items():
        for name, t in tiers.items():
            for out, body in t.get("Outputs", {}).items():
                assert body.get("Description"), f"{env}/{name}.json output {out}"


def test_logical_ids_never_contain_the_environment(templates):
    for env, tiers in templates.items():
        for t in tiers.values():
            assert not any(env in title.lower() for title in t["Resources"])
