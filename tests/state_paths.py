"""Walking a state machine definition (Amazon States Language) as the tests that reason about its paths need it."""

from __future__ import annotations


def successors(state: dict) -> list[str]:
    """Every state `state` can hand over to: Next, a Choice's branches and default, a Catch's."""
    nexts = [state.get("Next"), state.get("Default"), *(c.get("Next") for c in state.get("Choices", [])),
             *(c.get("Next") for c in state.get("Catch", []))]
    return sorted({n for n in nexts if n})


def paths_from(states: dict, start: str) -> list[list[str]]:
    """Every path from `start` to a state that ends the execution (loops are followed once)."""
    found, stack = [], [[start]]
    while stack:
        path = stack.pop()
        state = states[path[-1]]
        if state["Type"] in ("Succeed", "Fail") or state.get("End"):
            found.append(path)
        stack.extend([*path, n] for n in successors(state) if n not in path)
    return found
