"""troposphere objects built faster, exactly as troposphere builds them (used by the CLI while it generates).

troposphere's BaseAWSObject.__init__ stores each of its eight bookkeeping attributes through its own Python
__setattr__, looks `resource_type` up on property objects through __getattr__ (an exception each time), and
asks the class for a default of every property it declares (83 for a database instance): some 7 microseconds
an object before the first property is set, about a fifth of building the templates. `fast_init` does the same
per object, with what depends only on the class computed once per class, and sets the properties (and the class
defaults) through troposphere's own __setattr__: property types, validator functions and later to_dict checks
are troposphere's, unchanged.

It is written against troposphere 4.11.1 (the version setup.cfg pins): `faster_construction()` changes nothing
under any other version, and troposphere's own constructor still builds an object whose class overrides
__setattr__ or that has attributes before it runs. tests/test_construction.py builds every template both ways and
compares every object's attributes, and each kind of refusal.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import troposphere
from troposphere import BaseAWSObject

REVIEWED_VERSION = "4.11.1"  # the troposphere whose BaseAWSObject.__init__ fast_init reproduces
ORIGINAL_INIT = BaseAWSObject.__init__
_ATTRIBUTES = ("Condition", "CreationPolicy", "DeletionPolicy", "DependsOn", "Metadata", "UpdatePolicy",
               "UpdateReplacePolicy")
_set = object.__setattr__  # what BaseAWSObject.__setattr__ does with a name before the object is initialised

# class -> (its props, dictname, resource_type, the props the class itself gives a value), or None: troposphere's own.
_classes: dict[type, tuple[dict, Any, Any, tuple[str, ...]] | None] = {}


def _class_facts(cls: type) -> tuple[dict, Any, Any, tuple[str, ...]] | None:
    if cls.__setattr__ is not BaseAWSObject.__setattr__:
        return None
    props = cls.props  # type: ignore[attr-defined]
    # An instance has no `dictname` or `resource_type` of its own at this point, nor properties for __getattr__ to
    # answer from: the class's (or None) is what getattr/hasattr on the instance find.
    return (props, getattr(cls, "dictname", None), getattr(cls, "resource_type", None),
            tuple(name for name in props if getattr(cls, name, None) is not None))


def fast_init(self: Any, title: str | None, template: Any = None, validation: bool = True, **kwargs: Any) -> None:
    """BaseAWSObject.__init__ of troposphere 4.11.1, step for step."""
    cls = type(self)
    facts = _classes.get(cls)
    if facts is None or facts[0] is not cls.props:
        facts = _classes[cls] = _class_facts(cls)
    if facts is None or self.__dict__:  # an unusual class, or attributes set before this (a subclass's __init__)
        ORIGINAL_INIT(self, title, template, validation, **kwargs)
        return
    props, dictname, resource_type, class_defaults = facts
    _set(self, "title", title)
    _set(self, "template", template)
    _set(self, "do_validation", validation)
    _set(self, "propnames", set(props.keys()))
    _set(self, "attributes", list(_ATTRIBUTES))
    if self.title:
        self.validate_title()
    properties: dict[str, Any] = {}
    _set(self, "properties", properties)
    resource = {dictname: properties} if dictname else properties
    _set(self, "resource", resource)
    if resource_type is not None:
        resource["Type"] = resource_type
    _set(self, "_BaseAWSObject__initialized", True)
    for name in class_defaults:
        value = getattr(cls, name, None)
        if value is not None and name not in kwargs:
            self.__setattr__(name, value)
    for name, value in kwargs.items():
        self.__setattr__(name, value)
    self.add_to_template()


def active() -> bool:
    """Whether faster_construction() would replace the constructor under the installed troposphere."""
    return troposphere.__version__ == REVIEWED_VERSION and BaseAWSObject.__init__ in (ORIGINAL_INIT, fast_init)


@contextlib.contextmanager
def faster_construction() -> Iterator[None]:
    """troposphere objects built by fast_init for the duration (nothing changes if not active())."""
    previous = BaseAWSObject.__init__
    if not active():
        yield
        return
    BaseAWSObject.__init__ = fast_init
    try:
        yield
    finally:
        BaseAWSObject.__init__ = previous
