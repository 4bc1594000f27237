"""An invalid troposphere or awacs object fails generation, and the CLI reports it as the generator's bug.

Generation serialises through troposphere's public Template.to_dict(), so every check troposphere and awacs run
(property types and validator functions when a property is set; required properties, class validators and awacs'
required properties when serialised) runs, including checks a later troposphere adds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from awacs import s3 as s3_actions
from awacs.aws import PolicyDocument, Statement
from troposphere import Template
from troposphere.awslambda import Code, Function
from troposphere.iam import Role
from troposphere.logs import LogGroup

from generator import __main__ as cli
from generator import config, render
from generator.errors import EXIT_INTERNAL


def with_a_bad_object(monkeypatch, add: Callable[[Template], object]) -> None:
    """Make the storage tier add `add`'s object to its template, in every environment."""
    original = next(t.build for t in render.TIERS if t.name == "storage")

    def build(cfg):
        template = original(cfg)
        add(template)
        return template
    monkeypatch.setattr(render, "TIERS", tuple(dataclasses.replace(t, build=build) if t.name == "storage" else t
                                               for t in render.TIERS))


# case -> (how to add the object, the error, part of its message)
FAILS_GENERATION = {
    # checked when serialised (Template.to_dict)
    "missing required property": (lambda t: t.add_resource(Role("Bad")), ValueError,
                                  "Resource AssumeRolePolicyDocument required in type AWS::IAM::Role (title: Bad)"),
    "refused by a class validator": (lambda t: t.add_resource(Function(
        "Bad", Role="arn:aws:iam::123456789012:role/r", Runtime="python3.12", Handler="index.handler",
        Code=Code(ZipFile="print(1)", S3Bucket="bucket", S3Key="key"))), ValueError,
        "You can't specify both 'S3Bucket' and 'ZipFile'"),
    "awacs statement without its Effect": (lambda t: t.add_resource(Role(
        "Bad", AssumeRolePolicyDocument=PolicyDocument(Statement=[Statement(Action=[s3_actions.GetObject])]))),
        ValueError, "Resource Effect required"),
    # checked when the property is set (troposphere's __setattr__)
    "wrongly typed property": (lambda t: t.add_resource(LogGroup("Bad", LogGroupName=7)), TypeError,
                               "LogGroup'>: Bad.LogGroupName is <class 'int'>, expected <class 'str'>"),
    "value its validator function refuses": (lambda t: t.add_resource(LogGroup("Bad", RetentionInDays="a week")),
                                             ValueError, "invalid literal for int() with base 10: 'a week'"),
}


@pytest.mark.parametrize("case", sorted(FAILS_GENERATION))
def test_an_invalid_object_fails_generation(monkeypatch, case):
    add, error, message = FAILS_GENERATION[case]
    with_a_bad_object(monkeypatch, add)
    with pytest.raises(error) as raised:
        render.render_environment(config.get("dev"))
    assert message in str(raised.value)


@pytest.mark.parametrize("case", sorted(FAILS_GENERATION))
def test_the_cli_reports_an_invalid_object_as_an_internal_error_writing_nothing(monkeypatch, tmp_path, capsys, case):
    """A troposphere error is the generator's bug, not the user's input: exit 70, the traceback in a log."""
    add, error, message = FAILS_GENERATION[case]
    with_a_bad_object(monkeypatch, add)
    monkeypatch.setenv("PIPELINE_LOG_DIR", str(tmp_path / "logs"))
    assert cli.main(["--out", str(tmp_path / "out")]) == EXIT_INTERNAL
    line = capsys.readouterr().err.splitlines()[-1]  # troposphere writes a line of its own for a validator function
    assert line.startswith("internal error") and f"{error.__name__}: " in line and message in line
    assert not (tmp_path / "out").exists()
