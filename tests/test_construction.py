"""generator/construction.py: troposphere objects built by fast_init are the objects troposphere builds.

The CLI builds the templates under faster_construction(); these tests build every template both ways and compare
every object's attributes, and check that what troposphere refuses while building it still refuses, alike.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from troposphere import BaseAWSObject, Output, Parameter, Tags, Template
from troposphere.ec2 import SecurityGroup, SecurityGroupRule
from troposphere.iam import Role
from troposphere.logs import LogGroup

from generator import config, construction, render


def snapshot(value: object, path: frozenset[int] = frozenset()) -> object:
    """Everything an object holds, as plain data: type and attributes (in order), recursively (an object met again
    inside itself, as a template its resources point back to, is named, not expanded)."""
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    if id(value) in path:
        return ("cycle", type(value).__name__)
    inside = path | {id(value)}
    if isinstance(value, dict):
        return ("dict", [(k, snapshot(v, inside)) for k, v in value.items()])
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else value
        return (type(value).__name__, [snapshot(v, inside) for v in items])
    if hasattr(value, "__dict__"):
        return (type(value).__module__, type(value).__qualname__, snapshot(vars(value), inside))
    return repr(value)


def build_all() -> dict[str, dict[str, Template]]:
    return {env: render.build_templates(cfg) for env, cfg in config.ENVIRONMENTS.items()}


def test_the_fast_constructor_is_active_for_the_pinned_troposphere():
    """An upgrade of troposphere turns it off: review fast_init against the new BaseAWSObject.__init__, then
    update construction.REVIEWED_VERSION."""
    assert construction.active()


def test_every_template_is_built_exactly_as_troposphere_builds_it():
    by_troposphere = build_all()
    with construction.faster_construction():
        assert BaseAWSObject.__init__ is construction.fast_init
        fast = build_all()
    assert BaseAWSObject.__init__ is construction.ORIGINAL_INIT
    for env, templates in by_troposphere.items():
        for name, template in templates.items():
            assert snapshot(fast[env][name]) == snapshot(template), f"{env}/{name}"
            assert render.to_json(fast[env][name]) == render.to_json(template), f"{env}/{name}"


class DefaultRetention(LogGroup):
    RetentionInDays = 7  # troposphere sets a property the class itself gives a value


class LoudRole(Role):
    def __setattr__(self, name, value):  # a class with its own __setattr__ keeps troposphere's constructor
        super().__setattr__(name, value)


OBJECTS: dict[str, Callable[[], object]] = {
    "resource with properties, attributes, tags": lambda: LogGroup(
        "Logs", LogGroupName="n", RetentionInDays=30, Tags=Tags(A="1"), DeletionPolicy="Retain", DependsOn=["X"]),
    "property object": lambda: SecurityGroupRule(IpProtocol="tcp", FromPort=443, ToPort=443, CidrIp="10.0.0.0/8"),
    "nested property objects": lambda: SecurityGroup("Group", GroupDescription="d", SecurityGroupIngress=[
        SecurityGroupRule(IpProtocol="-1", CidrIp="10.0.0.0/8")]),
    "parameter": lambda: Parameter("Name", Type="String", Default="x"),
    "output": lambda: Output("Out", Value="v"),
    "class default": lambda: DefaultRetention("Logs"),
    "class default overridden": lambda: DefaultRetention("Logs", RetentionInDays=14),
    "own __setattr__": lambda: LoudRole("Role", AssumeRolePolicyDocument={}),
    "without validation": lambda: Role("Role", validation=False),
    "no title": lambda: Tags(A="b"),
    # refused while building
    "wrongly typed property": lambda: LogGroup("Logs", LogGroupName=7),
    "refused by a validator function": lambda: LogGroup("Logs", RetentionInDays=8),
    "unknown property": lambda: LogGroup("Logs", Retention=7),
    "title not alphanumeric": lambda: LogGroup("my-logs"),
    "parameter title too long": lambda: Parameter("P" * 256, Type="String"),
    "added to a template twice": lambda: [LogGroup("Logs", template=t) for t in [Template()] for _ in range(2)],
}


def outcome(make: Callable[[], object]) -> object:
    try:
        return snapshot(make())
    except Exception as e:  # the same exception, with the same message
        return ("raised", type(e).__name__, str(e))


@pytest.mark.parametrize("case", sorted(OBJECTS))
def test_each_kind_of_object_and_error_is_the_same_both_ways(case):
    expected = outcome(OBJECTS[case])
    with construction.faster_construction():
        assert outcome(OBJECTS[case]) == expected


def test_the_refusals_above_are_refusals():
    refused = {case for case in OBJECTS if isinstance(outcome(OBJECTS[case]), tuple)
               and outcome(OBJECTS[case])[0] == "raised"}
    assert refused == {"wrongly typed property", "refused by a validator function", "unknown property",
                       "title not alphanumeric", "parameter title too long", "added to a template twice"}


def test_the_original_constructor_is_back_after_an_error():
    with pytest.raises(TypeError), construction.faster_construction():
        LogGroup("Logs", LogGroupName=7)
    assert BaseAWSObject.__init__ is construction.ORIGINAL_INIT


def test_nothing_changes_under_another_troposphere(monkeypatch):
    monkeypatch.setattr(construction.troposphere, "__version__", "9.9.9")
    with construction.faster_construction():
        assert BaseAWSObject.__init__ is construction.ORIGINAL_INIT


class PresetRole(Role):
    def __init__(self, title, **kwargs):
        self.props = {**Role.props, "Extra": (str, False)}  # an instance's own props, set before troposphere's init
        super().__init__(title, **kwargs)


def test_an_object_with_attributes_before_the_constructor_gets_troposphere_s_own():
    expected = snapshot(PresetRole("Role", Extra="x"))
    with construction.faster_construction():
        assert snapshot(PresetRole("Role", Extra="x")) == expected
