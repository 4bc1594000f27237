"""Failure visibility: every way an execution can end other than success leads to exactly one error
notification, read from the generated templates (state machine graph, EventBridge rules and what they invoke).

- caught failure: every state that can fail (Task, Parallel, Map) catches States.ALL into a path that
  publishes to the error topic exactly once and then fails;
- bad input: the first state is a Choice that sends every input missing a field the workflow reads
  down such a path;
- timeout and abort: the execution skips every state, so exactly one EventBridge rule hands those statuses to a
  function (the jobs tier's scheduler, which also releases the slot of every other ending) that reports them on
  the error topic; no rule sends any status to the error topic itself (FAILED: the definition already notified).
Generic over every state machine in every template, so a new or changed workflow is covered as well.
"""

from __future__ import annotations

import fnmatch
import re

from generator import contracts
from generator.functions.video_jobs import contract

from conftest import as_list, each_resource, grants, resolve, sources
from state_paths import paths_from, successors

ERROR_TOPIC = {"Ref": contracts.ERROR_TOPIC_ARN.name}  # how a tier names the error topic it consumes
PUBLISH = "arn:aws:states:::sns:publish"
CAN_FAIL = ("Task", "Parallel", "Map")
ENDS_WITHOUT_A_STATE = ("ABORTED", "TIMED_OUT")
STATUS_CHANGE = "Step Functions Execution Status Change"
FIELD = re.compile(r"(?<!\$)\$\.([A-Za-z_][A-Za-z0-9_]*)")  # $.field, not the context object's $$.


def machines(templates: dict) -> list[tuple[str, str, str, str, dict]]:
    found = list(each_resource(templates, "AWS::StepFunctions::StateMachine"))
    assert found, "no state machine found"
    return found


def definition(machine: dict) -> dict:
    d = machine["Properties"]["Definition"]
    assert isinstance(d, dict), "Definition is written as an object, so it can be read here"
    return d


def error_publishers(machine: dict) -> set[str]:
    """States that publish to the error topic (a TopicArn substituted with the error topic's ARN)."""
    subs = machine["Properties"].get("DefinitionSubstitutions", {})
    error_placeholders = {"${" + k + "}" for k, v in subs.items() if v == ERROR_TOPIC}
    return {name for name, s in definition(machine)["States"].items()
            if s.get("Resource", "").startswith(PUBLISH)
            and s.get("Parameters", {}).get("TopicArn") in error_placeholders}


def outcome(states: dict, path: list[str]) -> str | None:
    """The outcome (contract.OUTCOME) a path that ends in a Succeed state hands to job control, if any: no capacity
    (requeue: not a failure, no notice) or invalid media (the user's error: one notice). Either ends in a Succeed
    state so that ExecutionsFailed counts the pipeline's failures only."""
    if states[path[-1]]["Type"] != "Succeed":
        return None
    found = [states[name].get("Parameters", {}).get(contract.OUTCOME) for name in path]
    return next((o for o in found if o in (contract.CAPACITY_UNAVAILABLE, contract.INVALID_MEDIA)), None)


def requeues(states: dict, path: list[str]) -> bool:
    return outcome(states, path) == contract.CAPACITY_UNAVAILABLE


def notices_due(states: dict, path: list[str]) -> int:
    """Error notices a path must publish: one on the way to a Fail state or to rejecting invalid media."""
    end = states[path[-1]]["Type"]
    return 1 if (end == "Fail" and not requeues(states, path)) or outcome(states, path) == contract.INVALID_MEDIA \
        else 0


def check_fails_after_one_notification(machine: dict, start: str, why: str, retried: str | None = None) -> list[str]:
    """Every path from a catcher's `start` notifies once and fails (or hands job control an outcome). A path back
    into `retried` (the task whose failure was caught: a retry by hand) is checked as the task's own paths are."""
    states, publishers = definition(machine)["States"], error_publishers(machine)
    problems = []
    for path in paths_from(states, start):
        if retried in path:
            continue
        notified = sum(1 for name in path if name in publishers)
        if outcome(states, path):
            if notified != notices_due(states, path):
                problems.append(f"{why}: path {' -> '.join(path)} ends {outcome(states, path)} after {notified} "
                                "error notification(s)")
            continue
        if states[path[-1]]["Type"] != "Fail" or notified != 1:
            problems.append(f"{why}: path {' -> '.join(path)} ends {states[path[-1]]['Type']} "
                            f"after {notified} error notification(s)")
    return problems


def test_every_path_to_failure_publishes_exactly_one_error_notification(templates):
    for label, *_, machine in machines(templates):
        d = definition(machine)
        publishers = error_publishers(machine)
        assert publishers, f"{label}: no state publishes to the error topic"
        for path in paths_from(d["States"], d["StartAt"]):
            notified = sum(1 for name in path if name in publishers)
            end = d["States"][path[-1]]["Type"]
            assert notified == notices_due(d["States"], path), f"{label}: {' -> '.join(path)} ({end}, {notified})"


def test_every_state_that_can_fail_catches_everything_into_one_error_notification(templates):
    problems = []
    for label, *_, machine in machines(templates):
        states, publishers = definition(machine)["States"], error_publishers(machine)
        for name, state in sorted(states.items()):
            if state["Type"] not in CAN_FAIL:
                continue
            if name in publishers:  # the notification itself: retried; if SNS still refuses, nothing else could
                if not state.get("Retry"):
                    problems.append(f"{label} {name}: the error notification is not retried")
                continue
            if not any("States.ALL" in c["ErrorEquals"] for c in state.get("Catch", [])):
                problems.append(f"{label} {name}: can fail but does not catch States.ALL")
            for catch in state.get("Catch", []):
                problems += check_fails_after_one_notification(machine, catch["Next"], f"{label} {name} catch",
                                                               retried=name)
    assert not problems, "\n".join(problems)


def input_fields_read(states: dict, start: str) -> set[str]:
    """Top-level input fields that states reachable from `start` read, minus those the workflow writes."""
    reachable, frontier = {start}, [start]
    while frontier:  # every state reachable, loops included (a retry by hand writes what it reads)
        for n in successors(states[frontier.pop()]):
            if n not in reachable:
                reachable.add(n)
                frontier.append(n)
    read, written = set(), set()

    def strings(value):
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            for item in value.values():
                yield from strings(item)
        elif isinstance(value, list):
            for item in value:
                yield from strings(item)

    for name in reachable:
        s = states[name]
        for text in strings({k: v for k, v in s.items() if k in ("Parameters", "Choices", "ItemsPath", "InputPath")}):
            read |= set(FIELD.findall(text))
        for result_path in [s.get("ResultPath"), *(c.get("ResultPath") for c in s.get("Catch", []))]:
            if isinstance(result_path, str):
                written |= set(FIELD.findall(result_path)[:1])
    return read - written


def test_bad_input_is_routed_to_exactly_one_error_notification(templates):
    for label, *_, machine in machines(templates):
        d = definition(machine)
        validate = d["States"][d["StartAt"]]
        assert validate["Type"] == "Choice", f"{label}: the first state must validate the input"
        problems = []
        for choice in validate["Choices"]:
            problems += check_fails_after_one_notification(machine, choice["Next"], f"{label} invalid input {choice}")
        assert not problems, "\n".join(problems)
        assert d["States"][validate["Default"]]["Type"] != "Fail"
        fields = input_fields_read(d["States"], validate["Default"])
        assert fields, f"{label}: the workflow reads no input field?"
        missing = {c["Variable"].removeprefix("$.") for c in validate["Choices"] if c.get("IsPresent") is False}
        # Issue 22: the location fields are checked present next (CheckLocation), and where any is missing a Pass
        # state (LocateSource) writes them all: either way the task never reads a missing one.
        located = d["States"][validate["Default"]]
        if located["Type"] == "Choice":
            checked = {r["Variable"].removeprefix("$.").split(".")[0] for c in located["Choices"]
                       for r in c.get("And", []) if r.get("IsPresent") is True}
            defaults = {k.removesuffix(".$") for k in d["States"][located["Default"]].get("Parameters", {})}
            assert checked <= defaults, f"{label}: {sorted(checked - defaults)} checked but not defaulted"
            missing |= checked
        assert fields <= missing, f"{label}: input fields read but not checked present: {sorted(fields - missing)}"


def rule_targets(templates: dict, env: str, machine: tuple[str, str]) -> dict[str, list[tuple[str, str]]]:
    """status -> (tier, logical id) of each enabled rule target, in any tier, that this machine's ending reaches."""
    found: dict[str, list[tuple[str, str]]] = {}
    for _label, _env, tier, _id, rule in each_resource({env: templates[env]}, "AWS::Events::Rule"):
        p = rule["Properties"]
        pattern = p.get("EventPattern", {})
        if (p.get("State") != "ENABLED" or pattern.get("source") != ["aws.states"]
                or pattern.get("detail-type") != [STATUS_CHANGE]
                or not any(sources(templates, env, tier, arn) == {machine}
                           for arn in pattern.get("detail", {}).get("stateMachineArn", []))):
            continue
        for target in p.get("Targets", []):
            for status in pattern["detail"].get("status", []):
                found.setdefault(status, []).extend(sorted(sources(templates, env, tier, target["Arn"])))
    return found


def error_topic_of(templates: dict, env: str, tier: str) -> tuple[str, str]:
    return resolve(templates, env, tier, ERROR_TOPIC)


def reports_errors(templates: dict, env: str, function: tuple[str, str], topic: tuple[str, str]) -> bool:
    """A function reports on the error topic: the topic's ARN in its environment, sns:Publish on it in its role."""
    tier, title = function
    f = templates[env][tier]["Resources"][title]
    if f["Type"] != "AWS::Lambda::Function":
        return False
    variables = f["Properties"].get("Environment", {}).get("Variables", {})
    [(role_tier, role)] = sources(templates, env, tier, f["Properties"]["Role"])
    return (any(sources(templates, env, tier, v) == {topic} for v in variables.values())
            and topic in grants(templates, env, role_tier, role).get("sns:Publish", set()))


def test_timeouts_and_aborts_reach_the_error_topic_once_through_a_reporter_and_no_rule_publishes_directly(
        templates):
    for label, env, tier, machine_id, machine in machines(templates):
        assert isinstance(definition(machine).get("TimeoutSeconds"), int), f"{label}: an execution must be bounded"
        topic = error_topic_of(templates, env, tier)
        targets = rule_targets(templates, env, (tier, machine_id))
        assert all(topic not in reached for reached in targets.values()), (
            f"{label}: a rule sends a status to the error topic itself: {targets}; the definition notifies "
            "failures, the reporter function timeouts and aborts")
        for status in ENDS_WITHOUT_A_STATE:
            reporters = [t for t in targets.get(status, []) if reports_errors(templates, env, t, topic)]
            assert len(reporters) == 1, f"{label}: {status} reaches {targets.get(status)}, expected one reporter"


def allows(document: dict, service: str, action: str) -> bool:
    return any(s["Effect"] == "Allow" and f"{service}.amazonaws.com" in as_list(s["Principal"].get("Service", []))
               and any(fnmatch.fnmatchcase(action, a) for a in as_list(s["Action"]))
               for s in as_list(document["Statement"]) if isinstance(s.get("Principal"), dict))


def test_the_reporter_may_publish_to_the_encrypted_error_topic_and_eventbridge_may_not(templates):
    """Otherwise the report would be dropped: the reporter's role may publish and use the topic's key, which
    admits the account's principals through SNS; EventBridge itself publishes nothing any more."""
    for label, env, tier, machine_id, _machine in machines(templates):
        topic_tier, topic_id = topic = error_topic_of(templates, env, tier)
        resources = templates[env][topic_tier]["Resources"]
        policies = [r["Properties"]["PolicyDocument"] for r in resources.values()
                    if r["Type"] == "AWS::SNS::TopicPolicy" and {"Ref": topic_id} in r["Properties"]["Topics"]]
        assert policies and not any(allows(p, "events", "sns:Publish") for p in policies), label
        key = resolve(templates, env, topic_tier, resources[topic_id]["Properties"]["KmsMasterKeyId"])
        key_policy = templates[env][key[0]]["Resources"][key[1]]["Properties"]["KeyPolicy"]
        # EventBridge still encrypts for the dead-letter queue, never for a topic.
        assert all("aws:sns" not in str(s.get("Condition")) for s in key_policy["Statement"]
                   if "events.amazonaws.com" in str(s["Principal"])), f"{label}: EventBridge encrypts for a topic"
        [through] = [s for s in key_policy["Statement"] if s.get("Sid") == "AccountPrincipalsThroughServices"]
        assert {"Fn::Sub": "sns.${AWS::Region}.amazonaws.com"} in through["Condition"]["StringEquals"]["kms:ViaService"]
        for status in ENDS_WITHOUT_A_STATE:
            for function in rule_targets(templates, env, (tier, machine_id))[status]:
                f = templates[env][function[0]]["Resources"][function[1]]
                [(role_tier, role)] = sources(templates, env, function[0], f["Properties"]["Role"])
                allowed = grants(templates, env, role_tier, role)
                assert topic in allowed["sns:Publish"], label
                assert key in allowed["kms:GenerateDataKey*"] and key in allowed["kms:Decrypt"], label


def test_the_path_walk_sees_a_missing_notification():
    """A definition whose catch fails without publishing is reported (the walk is not vacuous)."""
    machine = {"Properties": {"DefinitionSubstitutions": {"ErrorTopicArn": ERROR_TOPIC}, "Definition": {
        "StartAt": "Work", "States": {
            "Work": {"Type": "Task", "Resource": "arn:aws:states:::ecs:runTask.sync", "Next": "Done",
                     "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Failed"}]},
            "Notify": {"Type": "Task", "Resource": PUBLISH, "Parameters": {"TopicArn": "${ErrorTopicArn}"},
                       "Next": "Failed"},
            "Done": {"Type": "Succeed"}, "Failed": {"Type": "Fail"}}}}}
    assert error_publishers(machine) == {"Notify"}
    assert check_fails_after_one_notification(machine, "Failed", "Work catch")
