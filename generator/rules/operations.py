"""Operations rules (VP6xx): every alarm reaches a person through the ops topic and treats missing data on
purpose, every metric an alarm or the dashboard reads belongs to a resource of the same environment, and every
resource with a failure mode has the alarms it needs.

Read by resource type and through the parent's wiring (generator.graph), so a tier added later is covered: a
new state machine, function, API, database, cache, queue, rule or error topic without its alarms is a finding.
The ops topic and the error topics are the ones the contracts OpsTopicArn and ErrorTopicArn name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from generator import contracts, graph
from generator.rules.common import Templates, as_list, each_resource, rule

ALARM = "AWS::CloudWatch::Alarm"
DASHBOARD = "AWS::CloudWatch::Dashboard"
MISSING_DATA = ("breaching", "notBreaching", "ignore", "missing")

# (namespace, dimension) -> the resource type whose name or id the dimension's value is.
DIMENSIONS = {
    ("AWS/States", "StateMachineArn"): "AWS::StepFunctions::StateMachine",
    ("AWS/ApiGateway", "ApiName"): "AWS::ApiGateway::RestApi",
    ("AWS/ApiGateway", "Stage"): "AWS::ApiGateway::Stage",
    ("AWS/Lambda", "FunctionName"): "AWS::Lambda::Function",
    ("AWS/RDS", "DBInstanceIdentifier"): "AWS::RDS::DBInstance",
    ("AWS/ElastiCache", "CacheClusterId"): "AWS::ElastiCache::ReplicationGroup",  # a node: <group id>-00N
    ("AWS/SQS", "QueueName"): "AWS::SQS::Queue",
    ("AWS/SNS", "TopicName"): "AWS::SNS::Topic",
    ("AWS/Events", "RuleName"): "AWS::Events::Rule",
    ("ECS/ContainerInsights", "ClusterName"): "AWS::ECS::Cluster",
    ("AWS/S3", "BucketName"): "AWS::S3::Bucket",
    # The scheduler's own backlog metrics (embedded metric format), per job table.
    ("VideoProcessing/Jobs", "JobsTable"): "AWS::DynamoDB::Table",
}
# Dimensions whose value is a literal route of the API named beside them (per-method metrics).
ROUTE_DIMENSIONS = {("AWS/ApiGateway", "Resource"), ("AWS/ApiGateway", "Method")}
# Dimensions whose value is a constant of S3's metrics (the storage class; a metrics filter's id) beside the bucket.
CONSTANT_DIMENSIONS = {("AWS/S3", "StorageType"), ("AWS/S3", "FilterId")}
# The property holding a resource's physical name, for dimension values that are literal names.
NAME_PROPERTIES = {"AWS::ApiGateway::RestApi": "Name"}

# Resource type -> the metrics (namespace, name) whose alarms it needs: its failure modes (issue #14).
FAILURE_MODES = {
    "AWS::StepFunctions::StateMachine": {("AWS/States", m) for m in (
        "ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted", "ExecutionThrottled")},
    "AWS::Lambda::Function": {("AWS/Lambda", "Errors"), ("AWS/Lambda", "Throttles")},
    "AWS::ApiGateway::RestApi": {("AWS/ApiGateway", "5XXError"), ("AWS/ApiGateway", "Latency")},
    "AWS::RDS::DBInstance": {("AWS/RDS", m) for m in (
        "CPUUtilization", "FreeStorageSpace", "FreeableMemory", "DatabaseConnections")},
    "AWS::ElastiCache::ReplicationGroup": {("AWS/ElastiCache", m) for m in (
        "DatabaseMemoryUsagePercentage", "Evictions", "EngineCPUUtilization")},
    "AWS::SQS::Queue": {("AWS/SQS", "ApproximateNumberOfMessagesVisible")},
    "AWS::Events::Rule": {("AWS/Events", "FailedInvocations")},
}
# Topics with a failure mode: the error topic (its deliveries failing), named by the contract that carries it.
ERROR_TOPIC_FAILURE_MODES = {("AWS/SNS", "NumberOfNotificationsFailed")}
CACHE_NODE = re.compile(r"-(\d{3})$")
# ${Name} in a dashboard body's Fn::Sub text (${!Literal} is not a reference); GRID is the dashboard's width.
PLACEHOLDER = re.compile(r"\$\{([^}!]+)\}")
PLACEHOLDER_TOKEN = re.compile(r"@([^@]+)@")  # what dashboard_body writes for a placeholder, to parse the JSON
GRID = 24

Ref = tuple[str, str]  # (template, logical id)


def contract_resources(templates: Templates, env: str, contract: contracts.Contract) -> set[Ref]:
    """The resources an Output named after a contract names, in every template of env that produces it."""
    stacks = templates[env]
    return {ref for tier, body in stacks.items() if tier != graph.PARENT
            and contract.name in (body.get("Outputs") or {})
            for ref in [graph.resolve(stacks, tier, graph.output_value(stacks, tier, contract.name))] if ref}


def error_topics(templates: Templates, env: str) -> set[Ref]:
    return contract_resources(templates, env, contracts.ERROR_TOPIC_ARN)


def named_resources(templates: Templates, env: str, tier: str, value: Any, type_: str) -> set[Ref]:
    """The resources of type_ in env that a dimension value names: built from them, or their literal name."""
    stacks = templates[env]
    found = {ref for ref in graph.sources(stacks, tier, value)
             if ref[0] != graph.PARENT and graph.resource(stacks, ref).get("Type") == type_}
    literal = None if found else graph.literal(stacks, tier, value)
    if literal is not None and type_ in NAME_PROPERTIES:
        found = {(t, i) for t, i, r in graph.each_resource(stacks, type_)
                 if (r.get("Properties") or {}).get(NAME_PROPERTIES[type_]) == literal}
    return found


def alarm_metrics(alarm: dict) -> list[tuple[str, str, dict]]:
    """(namespace, metric, dimension name -> value) of every metric an alarm reads (plain or metric math)."""
    p = alarm.get("Properties") or {}
    if "MetricName" in p:
        return [(p.get("Namespace", ""), p["MetricName"], {d["Name"]: d["Value"] for d in p.get("Dimensions", [])})]
    return [(m["MetricStat"]["Metric"].get("Namespace", ""), m["MetricStat"]["Metric"]["MetricName"],
             {d["Name"]: d["Value"] for d in m["MetricStat"]["Metric"].get("Dimensions", [])})
            for m in p.get("Metrics", []) if "MetricStat" in m]


def dimension_problems(where: str, env: str, namespace: str, dims: dict,
                       names: Callable[[Any, str], set[Ref]]) -> list[str]:
    problems = []
    for name, value in sorted(dims.items()):
        if (namespace, name) in ROUTE_DIMENSIONS | CONSTANT_DIMENSIONS:
            continue
        type_ = DIMENSIONS.get((namespace, name))
        if type_ is None:
            problems.append(f"{where}: dimension {namespace} {name} is not in DIMENSIONS (say what it names)")
        elif not names(value, type_):
            problems.append(f"{where}: {namespace} {name} {value} names no {type_} of {env}")
    return problems


@rule("VP601", "Every alarm notifies exactly the ops topic (the OpsTopicArn contract's) in ALARM and in OK, with "
      "its actions enabled", "https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html")
def alarm_actions(templates: Templates) -> list[str]:
    problems = []
    for where, env, tier, _id, alarm in each_resource(templates, ALARM):
        p = alarm.get("Properties") or {}
        topics = sorted(contract_resources(templates, env, contracts.OPS_TOPIC_ARN))
        topic = topics[0] if len(topics) == 1 else None
        for key in ("AlarmActions", "OKActions"):
            targets = [graph.resolve(templates[env], tier, a) for a in as_list(p.get(key, []))]
            if topic is None or targets != [topic]:
                problems.append(f"{where}: {key} {targets}, expected the ops topic {topic or topics}")
        if p.get("ActionsEnabled") is False:
            problems.append(f"{where}: actions disabled")
    return problems


@rule("VP602", "Every alarm sets TreatMissingData on purpose (breaching, notBreaching, ignore or missing)",
      "https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html#alarms-and-missing-data")
def missing_data(templates: Templates) -> list[str]:
    return [f"{where}: TreatMissingData not set deliberately ({alarm['Properties'].get('TreatMissingData')})"
            for where, *_, alarm in each_resource(templates, ALARM)
            if (alarm.get("Properties") or {}).get("TreatMissingData") not in MISSING_DATA]


@rule("VP603", "Every metric an alarm reads has dimensions, each naming a resource of the right type in the same "
      "environment (DIMENSIONS says which type each names)",
      "https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch_concepts.html#Dimension")
def alarm_dimensions(templates: Templates) -> list[str]:
    problems = []
    for where, env, tier, _id, alarm in each_resource(templates, ALARM):
        metrics = alarm_metrics(alarm)

        def names(value: Any, type_: str, env: str = env, tier: str = tier) -> set[Ref]:
            return named_resources(templates, env, tier, value, type_)

        if not metrics:
            problems.append(f"{where}: reads no metric")
        for namespace, _metric, dims in metrics:
            if not dims:
                problems.append(f"{where}: {namespace} without dimensions watches the whole account")
            problems += dimension_problems(where, env, namespace, dims, names)
    return problems


def watched(templates: Templates, env: str) -> dict[Ref, list[tuple[str, str, str]]]:
    """(tier, logical id) of each watched resource -> (namespace, metric, node suffix or "") of its alarms."""
    found: dict[Ref, list[tuple[str, str, str]]] = {}
    for _where, e, tier, _id, alarm in each_resource(templates, ALARM):
        if e != env:
            continue
        for namespace, metric, dims in alarm_metrics(alarm):
            for name, value in dims.items():
                type_ = DIMENSIONS.get((namespace, name))
                for ref in named_resources(templates, env, tier, value, type_) if type_ else ():
                    node = CACHE_NODE.search(as_list(value.get("Fn::Sub", ""))[0]) if isinstance(value, dict) else None
                    found.setdefault(ref, []).append((namespace, metric, node.group(1) if node else ""))
    return found


@rule("VP604", "Every resource with a failure mode (FAILURE_MODES; the ErrorTopicArn topic) has an alarm on each of "
      "its metrics, a cache on each node",
      "https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/Best_Practice_Recommended_Alarms_AWS_Services.html")
def failure_mode_coverage(templates: Templates) -> list[str]:
    problems = []
    for env in sorted(templates):
        alarms = watched(templates, env)
        for where, e, tier, logical_id, r in each_resource(templates, *FAILURE_MODES):
            if e != env:
                continue
            have = alarms.get((tier, logical_id), [])
            nodes = ([f"{n:03d}" for n in range(1, int((r.get("Properties") or {}).get("NumCacheClusters", 1)) + 1)]
                     if r["Type"] == "AWS::ElastiCache::ReplicationGroup" else [""])
            for namespace, metric in sorted(FAILURE_MODES[r["Type"]]):
                problems += [f"{where}: no alarm on {namespace} {metric}" + (f" of node {node}" if node else "")
                             for node in nodes if (namespace, metric, node) not in have]
        for tier, logical_id in sorted(error_topics(templates, env)):
            have = alarms.get((tier, logical_id), [])
            problems += [f"{env}/{tier}.json {logical_id}: no alarm on {namespace} {metric}"
                         for namespace, metric in sorted(ERROR_TOPIC_FAILURE_MODES)
                         if (namespace, metric, "") not in have]
    return problems


def dashboard_body(resource: dict) -> tuple[dict, set[str]]:
    """The body as JSON with every ${Name} replaced by a token "@Name@", and the names substituted; ValueError
    for a body that is not an Fn::Sub of JSON text."""
    body = (resource.get("Properties") or {}).get("DashboardBody")
    text = body.get("Fn::Sub") if isinstance(body, dict) else None
    if not isinstance(text, str):
        raise ValueError("the body is not an Fn::Sub of text with its variables inline")
    body = json.loads(PLACEHOLDER.sub(r"@\1@", text))
    if not isinstance(body, dict) or not isinstance(body.get("widgets"), list):
        raise ValueError("the body has no list of widgets")
    return body, set(PLACEHOLDER.findall(text))


@rule("VP605", "Every dashboard is JSON whose widgets fit the 24-column grid without overlapping, show alarms of "
      "its template and read metrics of resources of its environment",
      "https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/CloudWatch-Dashboard-Body-Structure.html")
def dashboard_metrics(templates: Templates) -> list[str]:
    problems = []
    for where, env, tier, _id, r in each_resource(templates, DASHBOARD):
        try:
            body, _ = dashboard_body(r)
        except ValueError as e:
            problems.append(f"{where}: {e}")
            continue
        resources = templates[env][tier]["Resources"]

        def named(value: Any, type_: str, env: str = env, tier: str = tier) -> set[Ref]:
            token = re.fullmatch(PLACEHOLDER_TOKEN.pattern + r"(-\d{3})?", value) if isinstance(value, str) else None
            return named_resources(templates, env, tier, {"Ref": token.group(1)} if token else value, type_)

        cells: set[tuple[int, int]] = set()
        for i, w in enumerate(body["widgets"]):
            properties = w.get("properties") or {}
            at = f"{where} widget {i} {properties.get('title')!r}"
            if w["x"] + w["width"] > GRID:
                problems.append(f"{at}: wider than the {GRID}-column grid")
            area = {(x, y) for x in range(w["x"], w["x"] + w["width"]) for y in range(w["y"], w["y"] + w["height"])}
            if area & cells:
                problems.append(f"{at}: overlaps another widget at {min(area & cells)}")
            cells |= area
            for alarm in properties.get("alarms", []):
                title = re.fullmatch(r"@(\w+)\.Arn@", alarm)
                if not title or resources.get(title.group(1), {}).get("Type") != ALARM:
                    written = PLACEHOLDER_TOKEN.sub(r"${\1}", alarm)
                    problems.append(f"{at}: {written} is no alarm of this template")
            for metric in properties.get("metrics", []):
                namespace, name, *rest = metric
                pairs = [x for x in rest if not isinstance(x, dict)]
                dims = dict(zip(pairs[::2], pairs[1::2], strict=True))
                problems += dimension_problems(f"{at} {name}", env, namespace, dims, named)
    return problems
