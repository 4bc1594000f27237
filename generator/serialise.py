"""A template as plain data, as troposphere's `Template.to_dict()` makes it, in one pass.

troposphere's `encode_to_dict` turns every object into a dict and then walks that dict again, at every level of
nesting: a value five levels deep is copied five times. `template_body` walks each value once and runs the same
checks at the same moment, in the same order (an object's own before its properties'):

- a troposphere object (resource, property, Parameter, Output): `_validate_props()` (required properties) and
  `validate()` (the class's validators), unless the object was built with validation=False, as its `to_dict()` does;
- an awacs object (Statement, PolicyDocument...): its `JSONrepr()` (which checks awacs' required properties);
- anything else with its own `to_dict()` (troposphere subclasses that override it): that `to_dict()`.

Types and validator functions of properties run when a property is set, in troposphere, not here. The result equals
`Template.to_dict()` (tests/test_serialise.py compares both for every template and checks that each kind of
invalid object still fails).
"""

from __future__ import annotations

from typing import Any

import awacs
from troposphere import AWSHelperFn, BaseAWSObject, Tags, Template

# How to encode each type, decided once per type (what encode_to_dict asks of every value, every time).
_PLAIN, _DICT, _LIST, _AWS_OBJECT, _HELPER, _TAGS, _TO_DICT, _JSONREPR, _AWACS_OBJECT, _ASK = range(10)

_SCALARS = frozenset({str, int, float, bool, type(None)})  # returned as they are, without a call each
_kinds: dict[type, int] = {str: _PLAIN, int: _PLAIN, float: _PLAIN, bool: _PLAIN, type(None): _PLAIN,
                           dict: _DICT, list: _LIST, tuple: _LIST}
# troposphere class -> (its props dict, the names of its required properties in declaration order, whether it
# overrides validate()); only for classes that keep BaseAWSObject's _validate_props.
_required: dict[type, tuple[Any, tuple[str, ...], bool]] = {}


def template_body(template: Template) -> dict[str, Any]:
    """What `template.to_dict()` returns, with the same validation."""
    if type(template).to_dict is not Template.to_dict:
        return encode(template.to_dict())
    # Template.to_dict's sections, in its order.
    t: dict[str, Any] = {}
    if template.description:
        t["Description"] = template.description
    if template.metadata:
        t["Metadata"] = template.metadata
    if template.conditions:
        t["Conditions"] = template.conditions
    if template.mappings:
        t["Mappings"] = template.mappings
    if template.outputs:
        t["Outputs"] = template.outputs
    if template.parameters:
        t["Parameters"] = template.parameters
    if template.version:
        t["AWSTemplateFormatVersion"] = template.version
    if template.transform:
        t["Transform"] = template.transform
    if template.rules:
        t["Rules"] = template.rules
    if template.globals:
        t["Globals"] = template.globals
    t["Resources"] = template.resources
    return encode(t)


def encode(obj: Any) -> Any:
    """What troposphere's `encode_to_dict(obj)` returns, with the same validation."""
    kind = _kinds.get(type(obj))
    if kind is None:
        kind = _kinds[type(obj)] = _kind(type(obj))
    if kind == _DICT:
        return {name: value if type(value) in _SCALARS else encode(value) for name, value in obj.items()}
    if kind == _PLAIN:
        return obj
    if kind == _LIST:
        return [value if type(value) in _SCALARS else encode(value) for value in obj]
    if kind == _AWS_OBJECT:
        return _aws_object(obj)
    if kind == _HELPER:
        return encode(obj.data)
    if kind == _JSONREPR:
        return encode(obj.JSONrepr())
    if kind == _TAGS:
        return [encode(tag) for tag in obj.tags]
    if kind == _TO_DICT:
        return encode(obj.to_dict())
    if kind == _AWACS_OBJECT and "to_dict" not in obj.properties:
        return encode(obj.JSONrepr())  # awacs' __getattr__ answers from .properties: no to_dict there
    # A class that answers attribute lookups itself (__getattr__): ask the object, as encode_to_dict does.
    if hasattr(obj, "to_dict"):
        return encode(obj.to_dict())
    if isinstance(obj, (list, tuple)):
        return [encode(value) for value in obj]
    if isinstance(obj, dict):
        return {name: encode(value) for name, value in obj.items()}
    if hasattr(obj, "JSONrepr"):
        return encode(obj.JSONrepr())
    return obj


def _kind(cls: type) -> int:
    """encode_to_dict's questions (to_dict? list? dict? JSONrepr?) in its order, answered for a class."""
    to_dict = getattr(cls, "to_dict", None)
    if to_dict is not None:
        if to_dict is BaseAWSObject.to_dict:
            return _AWS_OBJECT
        if to_dict is Tags.to_dict:
            return _TAGS
        if to_dict is AWSHelperFn.to_dict:
            return _HELPER
        return _TO_DICT
    if getattr(cls, "__getattr__", None) is awacs.AWSObject.__getattr__ and getattr(cls, "JSONrepr", None):
        return _AWACS_OBJECT
    if getattr(cls, "__getattr__", None) is not None:
        return _ASK  # an instance may answer to_dict or JSONrepr though its class has neither
    if issubclass(cls, (list, tuple)):
        return _LIST
    if issubclass(cls, dict):
        return _DICT
    if getattr(cls, "JSONrepr", None) is not None:
        return _JSONREPR
    return _PLAIN


def _aws_object(obj: BaseAWSObject) -> Any:
    """BaseAWSObject.to_dict(), its result encoded."""
    if obj.do_validation:
        cls = type(obj)
        known = _required.get(cls)
        if known is None or known[0] is not obj.props:
            if cls._validate_props is not BaseAWSObject._validate_props:
                known = None
            else:
                required = tuple(name for name, (_, is_required) in obj.props.items() if is_required)
                known = _required[cls] = (obj.props, required, cls.validate is not BaseAWSObject.validate)
        if known is None:
            obj._validate_props()
            obj.validate()
        else:
            properties = obj.properties
            for name in known[1]:
                if name not in properties:
                    obj._validate_props()  # raises troposphere's own error for the first one missing
            if known[2]:
                obj.validate()
    if obj.properties:
        return encode(obj.resource)
    if hasattr(obj, "resource_type"):
        return encode({name: value for name, value in obj.resource.items() if name != "Properties"})
    return {}
