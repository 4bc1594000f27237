"""generator/serialise.py: the one-pass walk gives what troposphere's Template.to_dict() gives, fails where it fails.

Generation serialises with serialise.template_body instead of troposphere's to_dict (a third of the time); these
tests hold it to troposphere's result for every template, and to troposphere's errors for each kind of check
(required properties, property types and validator functions, class validators, awacs' required properties).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from awacs import s3 as s3_actions
from awacs.aws import Allow, PolicyDocument, Principal, Statement
from troposphere import Output, Parameter, Ref, Tags, Template
from troposphere.awslambda import Code, Function
from troposphere.iam import Policy, Role
from troposphere.logs import LogGroup

from generator import __main__ as cli
from generator import config, render, serialise
from generator.errors import EXIT_INTERNAL

TRUST = PolicyDocument(Statement=[Statement(Effect=Allow, Principal=Principal("Service", ["lambda.amazonaws.com"]),
                                            Action=[s3_actions.Action("GetObject")])])


def test_every_template_equals_troposphere_to_dict_to_the_byte():
    for env, cfg in config.ENVIRONMENTS.items():
        for name, template in render.build_templates(cfg).items():
            expected = template.to_dict()
            actual = serialise.template_body(template)
            assert actual == expected, f"{env}/{name}"
            # == takes 1 for True: the JSON text tells them apart.
            assert render.to_json(actual) == render.to_json(expected), f"{env}/{name}"


# Objects troposphere or awacs refuse when the template is serialised (not when the object is built).
INVALID_AT_SERIALISATION: dict[str, Callable[[Template], object]] = {
    "resource without a required property": lambda t: t.add_resource(Role("Bad")),
    "nested property without a required property": lambda t: t.add_resource(Role(
        "Bad", AssumeRolePolicyDocument=TRUST, Policies=[Policy(PolicyName="only-a-name")])),
    "output without its value": lambda t: t.add_output(Output("Bad", Description="no Value")),
    "class validator (Parameter default of the wrong type)": lambda t: t.add_parameter(
        Parameter("Bad", Type="Number", Default="many")),
    "class validator (Lambda code both inline and in S3)": lambda t: t.add_resource(Function(
        "Bad", Role="arn:aws:iam::123456789012:role/r", Runtime="python3.12", Handler="index.handler",
        Code=Code(ZipFile="print(1)", S3Bucket="bucket", S3Key="key"))),
    "awacs statement without its Effect": lambda t: t.add_resource(Role(
        "Bad", AssumeRolePolicyDocument=PolicyDocument(Statement=[Statement(Action=[s3_actions.GetObject])]))),
}


def a_real_template() -> Template:
    return render.build_templates(config.get("dev"))["storage.json"]


@pytest.mark.parametrize("case", sorted(INVALID_AT_SERIALISATION))
def test_what_troposphere_refuses_at_serialisation_fails_with_the_same_error(case):
    template = a_real_template()
    INVALID_AT_SERIALISATION[case](template)
    with pytest.raises(Exception) as by_troposphere:
        template.to_dict()
    with pytest.raises(Exception) as by_walk:
        serialise.template_body(template)
    assert type(by_walk.value) is type(by_troposphere.value)
    assert str(by_walk.value) == str(by_troposphere.value)


def test_objects_built_without_validation_are_not_validated_either():
    template = a_real_template()
    template.add_resource(Role("Unchecked").no_validation())
    assert serialise.template_body(template) == template.to_dict()
    assert serialise.template_body(template)["Resources"]["Unchecked"] == {"Type": "AWS::IAM::Role"}


def test_the_walk_follows_troposphere_for_tags_helpers_tuples_and_empty_objects():
    template = Template()
    template.add_resource(LogGroup("Logs", Tags=Tags(B="2", A="1") + Tags({"C": Ref("P")})))
    template.add_resource(Role("Refs", AssumeRolePolicyDocument=TRUST, ManagedPolicyArns=[Ref("P")],
                               DependsOn=["Logs"], Metadata={"m": (1, True, None, 2.5)}))
    template.add_parameter(Parameter("P", Type="String"))
    assert serialise.template_body(template) == template.to_dict()


def with_a_bad_object(monkeypatch, add: Callable[[Template], object]) -> None:
    """Make the storage tier add `add`'s object to its template, in every environment."""
    original = next(t.build for t in render.TIERS if t.name == "storage")

    def build(cfg):
        template = original(cfg)
        add(template)
        return template
    monkeypatch.setattr(render, "TIERS", tuple(dataclasses.replace(t, build=build) if t.name == "storage" else t
                                               for t in render.TIERS))


FAILS_GENERATION = {
    # checked when serialised
    "missing required property": (lambda t: t.add_resource(Role("Bad")), ValueError,
                                  "Resource AssumeRolePolicyDocument required in type AWS::IAM::Role (title: Bad)"),
    # checked when the property is set (troposphere's __setattr__), which the walk does not change
    "wrongly typed property": (lambda t: t.add_resource(LogGroup("Bad", LogGroupName=7)), TypeError,
                               "LogGroup'>: Bad.LogGroupName is <class 'int'>, expected <class 'str'>"),
    "value its validator function refuses": (lambda t: t.add_resource(LogGroup("Bad", RetentionInDays="a week")),
                                             ValueError, "invalid literal for int() with base 10: 'a week'"),
}


@pytest.mark.parametrize("case", sorted(FAILS_GENERATION))
def test_an_invalid_object_still_fails_generation(monkeypatch, case):
    add, error, message = FAILS_GENERATION[case]
    with_a_bad_object(monkeypatch, add)
    with pytest.raises(error) as raised:
        render.render_environment(config.get("dev"))
    assert message in str(raised.value)


@pytest.mark.parametrize("case", sorted(FAILS_GENERATION))
def test_the_cli_reports_an_invalid_object_as_before_writing_nothing(monkeypatch, tmp_path, capsys, case):
    """A troposphere error is the generator's bug, not the user's input: exit 70, the traceback in a log."""
    add, error, message = FAILS_GENERATION[case]
    with_a_bad_object(monkeypatch, add)
    monkeypatch.setenv("PIPELINE_LOG_DIR", str(tmp_path / "logs"))
    assert cli.main(["--out", str(tmp_path / "out")]) == EXIT_INTERNAL
    line = capsys.readouterr().err.splitlines()[-1]  # troposphere writes a line of its own for a validator function
    assert line.startswith("internal error") and f"{error.__name__}: " in line and message in line
    assert not (tmp_path / "out").exists()
