"""main.json: one nested stack per tier, wired output-to-parameter, with only data-flow dependencies."""

from __future__ import annotations

import re

import pytest

from generator import contracts

from conftest import sources

ENVS = ("dev", "staging", "prod")


def nested_stacks(templates, env) -> dict[str, str]:
    """tier -> logical id of the parent's nested stack that deploys it."""
    return {r["Properties"]["TemplateURL"].removesuffix(".json"): title
            for title, r in templates[env]["main"]["Resources"].items() if r["Type"] == "AWS::CloudFormation::Stack"}


@pytest.mark.parametrize("env", ENVS)
def test_the_parent_deploys_every_tier_template_once_tagged_with_project_and_environment(templates, env):
    resources = templates[env]["main"]["Resources"]
    stacks = nested_stacks(templates, env)
    assert sorted(stacks) == sorted(tier for tier in templates[env] if tier != "main")
    assert len(resources) == len(stacks), "the parent holds nothing but the nested stacks"
    for title in stacks.values():
        assert re.fullmatch(r"[A-Z][A-Za-z0-9]*Stack", title), "a stable PascalCase title, no environment in it"
        tags = {t["Key"]: t["Value"] for t in resources[title]["Properties"]["Tags"]}
        assert tags["Project"] == "video-processing" and tags["Environment"] == env


@pytest.mark.parametrize("env", ENVS)
def test_every_child_parameter_is_wired_from_its_producer_or_the_parent(templates, env):
    main = templates[env]["main"]
    for tier, title in nested_stacks(templates, env).items():
        child_params = set(templates[env][tier].get("Parameters", {}))
        wiring = main["Resources"][title]["Properties"].get("Parameters", {})
        assert set(wiring) == child_params, tier
        for param, value in wiring.items():
            if param in main["Parameters"]:
                assert value == {"Ref": param}
            else:
                producer, attribute = value["Fn::GetAtt"]
                assert attribute == f"Outputs.{param}", "an output feeds the parameter of the same name"
                producer_tier = main["Resources"][producer]["Properties"]["TemplateURL"].removesuffix(".json")
                assert param in templates[env][producer_tier]["Outputs"]


def test_no_depends_on_so_independent_tiers_deploy_in_parallel(templates):
    main = templates["dev"]["main"]["Resources"]
    assert not any("DependsOn" in r for r in main.values())
    # Each tier waits only for the tiers whose outputs it consumes: network and notification for none,
    # storage and cache for network alone, so storage and cache deploy in parallel.
    consumed = {title: sorted({v["Fn::GetAtt"][0] for v in r["Properties"].get("Parameters", {}).values()
                               if "Fn::GetAtt" in v}) for title, r in main.items()}
    assert consumed["NetworkStack"] == [] and consumed["NotificationStack"] == []
    assert consumed["StorageStack"] == ["NetworkStack"] and consumed["CacheStack"] == ["NetworkStack"]
    # The schema waits for the database; compute for the processor's database user too (its IAM grant names it),
    # and for the media bucket the task reads sources from and writes outputs to.
    assert consumed["SchemaStack"] == ["NetworkStack", "StorageStack"]
    assert consumed["ComputeStack"] == ["CacheStack", "MediaStack", "SchemaStack", "StorageStack"]


def test_parent_parameters_are_deploy_time_only(templates):
    params = templates["dev"]["main"]["Parameters"]
    assert set(params) == {c.name for c in contracts.DEPLOY_TIME}
    assert params["NotificationEmail"]["Default"] == ""


def test_parent_outputs_the_state_machine_and_topics(templates):
    outputs = templates["dev"]["main"]["Outputs"]
    stack, attribute = outputs["StateMachineArn"]["Value"]["Fn::GetAtt"]
    assert (stack, attribute) == (nested_stacks(templates, "dev")["workflow"], "Outputs.StateMachineArn")
    workflow_output = templates["dev"]["workflow"]["Outputs"]["StateMachineArn"]["Value"]
    assert sources(templates, "dev", "workflow", workflow_output) == {("workflow", "StateMachine")}
    assert {"CompletionTopicArn", "ErrorTopicArn"} <= set(outputs)
    assert all(o["Description"] for o in outputs.values())


def test_a_parameter_without_producer_is_a_wiring_error():
    from troposphere import Parameter, Template

    from generator import config, parent

    orphan = Template()
    orphan.add_parameter(Parameter("NobodyMakesThis", Type="String"))
    with pytest.raises(parent.WiringError, match=r"NobodyMakesThis.*found: none"):
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
