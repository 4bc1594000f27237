"""Whether a property change replaces its resource: the create-only pointers of the type's schema."""

from __future__ import annotations

from generator.aws_facts import create_only

REPLACED, MAY_BE_REPLACED = "replaced", "may be replaced"


def _matches(pointer: tuple[str, ...], path: tuple) -> bool:
    """A change at `path` (below Properties) touches `pointer` when one is a prefix of the other."""
    for p, seg in zip(pointer, path, strict=False):  # a prefix of either matches
        if p == "*" and isinstance(seg, (int, tuple)):
            continue
        if p != seg:
            return False
    return True


def replacement_for(resource_type: str, prop_path: tuple) -> str | None:
    always, conditional = create_only(resource_type)
    if any(_matches(p, prop_path) for p in always):
        return REPLACED
    if any(_matches(p, prop_path) for p in conditional):
        return MAY_BE_REPLACED
    return None


def worst(*levels: str | None) -> str | None:
    return REPLACED if REPLACED in levels else MAY_BE_REPLACED if MAY_BE_REPLACED in levels else None

