"""Operations, over every generated template of every environment: every alarm reaches a person through the ops
topic (ALARM and OK), every metric an alarm or the dashboard reads belongs to a resource of the same
environment, and every resource with a failure mode has the alarms it needs.

Like the security rules, each rule reads templates generically (by resource type, following Parameters through
the parent to the tier that produces them), so a tier added later is covered: a new state machine, function,
API, database, cache, queue, rule or error topic without its alarms fails here. Each rule returns the problems
it finds; the `test_rule_*` tests feed it a broken copy to prove it is not vacuous.

The alarms themselves are declared by the tiers (ALARMS, generator/alarms.py): the tests below check the
operations tier builds exactly those, from the declaration and the environment's settings, on resources of the
declaring tier, each with its runbook row, rather than repeating the generated values.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re

import pytest

from generator import alarms, config, contracts, dashboard, docs, graph, names, runbook, tiers
from generator.alarms import AlarmSpec
from generator.errors import WiringError
from generator.tiers import operations

from conftest import as_list, each_resource, resolve, resources_of_type, sources

ALARM = "AWS::CloudWatch::Alarm"
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


def ops_topic(templates: dict, env: str) -> tuple[str, str]:
    outputs = templates[env]["operations"]["Outputs"]
    return resolve(templates, env, "operations", outputs[contracts.OPS_TOPIC_ARN.name]["Value"])


def error_topics(templates: dict, env: str) -> set[tuple[str, str]]:
    return {resolve(templates, env, tier, body["Outputs"][contracts.ERROR_TOPIC_ARN.name]["Value"])
            for tier, body in templates[env].items()
            if tier != "main" and contracts.ERROR_TOPIC_ARN.name in body.get("Outputs", {})}


def literal_of(templates: dict, env: str, tier: str, value):
    """The literal string a value is, through the parent's wiring (a Parameter fed by an Output), else None."""
    return graph.literal(templates[env], tier, value)


def named_resources(templates: dict, env: str, tier: str, value, type_: str) -> set[tuple[str, str]]:
    """The resources of type_ in env that a dimension value names: built from them, or their literal name."""
    def type_of(ref):
        return templates[env][ref[0]]["Resources"][ref[1]]["Type"] if ref[0] != "main" else None

    found = {ref for ref in sources(templates, env, tier, value) if type_of(ref) == type_}
    literal = None if found else literal_of(templates, env, tier, value)
    if literal is not None and type_ in NAME_PROPERTIES:
        found = {(t, i) for _l, e, t, i, r in each_resource(templates, type_)
                 if e == env and r["Properties"].get(NAME_PROPERTIES[type_]) == literal}
    return found


def alarm_metrics(alarm: dict) -> list[tuple[str, str, dict]]:
    """(namespace, metric, dimension name -> value) of every metric an alarm reads (plain or metric math)."""
    p = alarm["Properties"]
    if "MetricName" in p:
        return [(p.get("Namespace"), p["MetricName"], {d["Name"]: d["Value"] for d in p.get("Dimensions", [])})]
    return [(m["MetricStat"]["Metric"].get("Namespace"), m["MetricStat"]["Metric"]["MetricName"],
             {d["Name"]: d["Value"] for d in m["MetricStat"]["Metric"].get("Dimensions", [])})
            for m in p.get("Metrics", []) if "MetricStat" in m]


def dimension_problems(templates, env, tier, where, namespace, dims, resolve_value) -> list[str]:
    problems = []
    for name, value in sorted(dims.items()):
        if (namespace, name) in ROUTE_DIMENSIONS | CONSTANT_DIMENSIONS:
            continue
        type_ = DIMENSIONS.get((namespace, name))
        if type_ is None:
            problems.append(f"{where}: dimension {namespace} {name} is not in DIMENSIONS (say what it names)")
        elif not resolve_value(value, type_):
            problems.append(f"{where}: {namespace} {name} {value} names no {type_} of {env}")
    return problems


# --------------------------------------------------------------------------------------------------
# Rules

def problems_alarm_actions(templates: dict) -> list[str]:
    """Every alarm notifies exactly the ops topic in ALARM and in OK, and treats missing data on purpose."""
    problems = []
    for label, env, tier, _id, alarm in each_resource(templates, ALARM):
        p = alarm["Properties"]
        topic = ops_topic(templates, env) if "operations" in templates[env] else None
        for key in ("AlarmActions", "OKActions"):
            targets = [resolve(templates, env, tier, a) for a in as_list(p.get(key, []))]
            if targets != [topic] or topic is None:
                problems.append(f"{label}: {key} {targets}, expected the ops topic {topic}")
        if p.get("ActionsEnabled") is False:
            problems.append(f"{label}: actions disabled")
        if p.get("TreatMissingData") not in MISSING_DATA:
            problems.append(f"{label}: TreatMissingData not set deliberately ({p.get('TreatMissingData')})")
    return problems


def problems_alarm_dimensions(templates: dict) -> list[str]:
    """Every namespace and dimension an alarm reads names a resource of the right type in the same environment."""
    problems = []
    for label, env, tier, _id, alarm in each_resource(templates, ALARM):
        metrics = alarm_metrics(alarm)
        if not metrics:
            problems.append(f"{label}: reads no metric")
        for namespace, _metric, dims in metrics:
            if not dims:
                problems.append(f"{label}: {namespace} without dimensions watches the whole account")
            problems += dimension_problems(templates, env, tier, label, namespace, dims,
                                           lambda v, t, env=env, tier=tier: named_resources(templates, env, tier, v, t))
    return problems


def watched(templates: dict, env: str) -> dict[tuple[str, str], list[tuple[str, str, str]]]:
    """(tier, logical id) of each watched resource -> (namespace, metric, node suffix or "") of its alarms."""
    found: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
    for _label, e, tier, _id, alarm in each_resource(templates, ALARM):
        if e != env:
            continue
        for namespace, metric, dims in alarm_metrics(alarm):
            for name, value in dims.items():
                type_ = DIMENSIONS.get((namespace, name))
                for ref in named_resources(templates, env, tier, value, type_) if type_ else ():
                    node = CACHE_NODE.search(as_list(value.get("Fn::Sub", ""))[0]) if isinstance(value, dict) else None
                    found.setdefault(ref, []).append((namespace, metric, node.group(1) if node else ""))
    return found


def problems_failure_mode_coverage(templates: dict) -> list[str]:
    """Every resource with a failure mode has an alarm on each of its metrics (a cache: on each node)."""
    problems = []
    for env in sorted(templates):
        alarms = watched(templates, env)
        for label, e, tier, logical_id, r in each_resource(templates, *FAILURE_MODES):
            if e != env:
                continue
            have = alarms.get((tier, logical_id), [])
            nodes = ([f"{n:03d}" for n in range(1, int(r["Properties"].get("NumCacheClusters", 1)) + 1)]
                     if r["Type"] == "AWS::ElastiCache::ReplicationGroup" else [""])
            for namespace, metric in sorted(FAILURE_MODES[r["Type"]]):
                for node in nodes:
                    if (namespace, metric, node) not in have:
                        problems.append(f"{label}: no alarm on {namespace} {metric}" + (f" of node {node}" if node
                                                                                          else ""))
        for tier, logical_id in sorted(error_topics(templates, env)):
            have = alarms.get((tier, logical_id), [])
            for namespace, metric in sorted(ERROR_TOPIC_FAILURE_MODES):
                if (namespace, metric, "") not in have:
                    problems.append(f"{env}/{tier}.json {logical_id}: no alarm on {namespace} {metric}")
    return problems


def test_every_alarm_notifies_the_ops_topic_in_alarm_and_ok(templates):
    assert list(each_resource(templates, ALARM)), "no alarm found"
    assert problems_alarm_actions(templates) == []


def test_every_alarm_metric_names_a_resource_of_the_same_environment(templates):
    assert problems_alarm_dimensions(templates) == []


def test_every_resource_with_a_failure_mode_has_its_alarms(templates):
    assert problems_failure_mode_coverage(templates) == []


def test_the_failure_mode_table_covers_every_watched_type_present(templates):
    """Each failure-mode type occurs (else the coverage rule would prove nothing about it)."""
    present = {r["Type"] for *_, r in each_resource(templates)}
    assert set(FAILURE_MODES) <= present
    assert all(error_topics(templates, env) for env in templates)


# --------------------------------------------------------------------------------------------------
# The rules catch what they are meant to catch

def with_tier(templates: dict, env: str, name: str, body: dict) -> dict:
    """A copy of the templates with one more tier (and its nested stack in the parent, no parameters)."""
    changed = copy.deepcopy(templates)
    changed[env][name] = body
    changed[env]["main"]["Resources"][f"{name.title()}Stack"] = {
        "Type": "AWS::CloudFormation::Stack", "Properties": {"TemplateURL": f"{name}.json", "Parameters": {}}}
    return changed


def test_rule_coverage_catches_a_later_tier_whose_state_machine_and_function_have_no_alarm(templates):
    resources = {"Uploads": {"Type": "AWS::StepFunctions::StateMachine", "Properties": {}},
                 "UploadsFunction": {"Type": "AWS::Lambda::Function", "Properties": {}}}
    found = problems_failure_mode_coverage(with_tier(templates, "dev", "uploads", {"Resources": resources}))
    assert len(found) == 6 and all(p.startswith("dev/uploads.json Uploads") for p in found), found


def test_rule_coverage_catches_a_second_cache_node_without_alarms(templates):
    changed = copy.deepcopy(templates)
    group = changed["dev"]["cache"]["Resources"]["CacheReplicationGroup"]["Properties"]
    group["NumCacheClusters"] = 2
    found = problems_failure_mode_coverage(changed)
    assert len(found) == 3 and all("of node 002" in p for p in found), found


def test_rule_actions_catch_an_alarm_without_ok_action_or_to_another_topic(templates):
    changed = copy.deepcopy(templates)
    alarm = changed["dev"]["operations"]["Resources"]["DatabaseCpuAlarm"]["Properties"]
    del alarm["OKActions"]
    alarm.pop("TreatMissingData")
    stray = {"Type": ALARM, "Properties": {**alarm, "AlarmActions": [{"Ref": contracts.ERROR_TOPIC_ARN.name}],
                                           "OKActions": [{"Ref": contracts.ERROR_TOPIC_ARN.name}],
                                           "TreatMissingData": "notBreaching"}}
    changed["dev"]["workflow"]["Resources"]["StrayAlarm"] = stray
    found = problems_alarm_actions(changed)
    assert any("DatabaseCpuAlarm: OKActions" in p for p in found), found
    assert any("DatabaseCpuAlarm: TreatMissingData" in p for p in found), found
    assert any("StrayAlarm: AlarmActions" in p for p in found), found


def test_rule_dimensions_catch_a_metric_of_another_environment_or_an_unknown_dimension(templates):
    changed = copy.deepcopy(templates)
    resources = changed["dev"]["operations"]["Resources"]
    resources["Api5xxRateAlarm"]["Properties"]["Dimensions"][0]["Value"] = names.api("prod")
    resources["DatabaseCpuAlarm"]["Properties"]["Dimensions"][0]["Name"] = "DBClusterIdentifier"
    found = problems_alarm_dimensions(changed)
    assert len(found) == 2, found
    assert "Api5xxRateAlarm" in found[0] and "names no AWS::ApiGateway::RestApi of dev" in found[0]
    assert "DatabaseCpuAlarm" in found[1] and "not in DIMENSIONS" in found[1]


# --------------------------------------------------------------------------------------------------
# The operations tier itself

@pytest.mark.parametrize("env", list(config.ENVIRONMENTS))
def test_the_ops_topic_has_its_own_rotating_key_and_admits_only_this_environments_alarms(templates, env):
    t = templates[env]["operations"]
    topic = t["Resources"]["OpsTopic"]["Properties"]
    assert sources(templates, env, "operations", topic["KmsMasterKeyId"]) == {("operations", "OpsKey")}, \
        "not the notification key: a broken error path must not silence the alarms"
    assert topic["TopicName"] == names.topic("ops", env)
    [policy] = [r["Properties"] for r in t["Resources"].values() if r["Type"] == "AWS::SNS::TopicPolicy"]
    [allow] = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": ["cloudwatch.amazonaws.com"]}
    assert allow["Action"] in ("sns:Publish", ["sns:Publish"])
    pattern = allow["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Sub"]
    assert pattern.endswith(f":alarm:{names.alarms_pattern(env)}")
    alarm_names = [r["Properties"]["AlarmName"] for r in t["Resources"].values() if r["Type"] == ALARM]
    assert all(n.startswith(names.alarms_pattern(env).rstrip("*")) for n in alarm_names)
    assert len(set(alarm_names)) == len(alarm_names)
    key_services = {s["Principal"].get("Service", [None])[0] for s in t["Resources"]["OpsKey"]["Properties"]
                    ["KeyPolicy"]["Statement"] if "Service" in s["Principal"]}
    assert key_services == {"cloudwatch.amazonaws.com"}


def test_the_ops_e_mail_is_a_deploy_time_parameter_subscribed_only_when_given(templates):
    t = templates["dev"]["operations"]
    [sub] = [r for r in t["Resources"].values() if r["Type"] == "AWS::SNS::Subscription"]
    assert sub["Condition"] == operations.HAS_EMAIL and sub["Properties"]["Protocol"] == "email"
    assert sources(templates, "dev", "operations", sub["Properties"]["Endpoint"]) == {("main", "OpsEmail")}
    assert templates["dev"]["main"]["Parameters"]["OpsEmail"]["Default"] == ""


def built_alarms(templates: dict, env: str) -> dict[str, tuple[dict, alarms.Alarm]]:
    """logical id -> (the alarm's Properties in the generated template, what it was built from)."""
    resources = templates[env]["operations"]["Resources"]
    return {a.title: (resources[a.title]["Properties"], a) for a in alarms.expanded(config.get(env), tiers.ALARMS)}


@pytest.mark.parametrize("env", list(config.ENVIRONMENTS))
def test_the_operations_tier_builds_exactly_the_alarms_the_tiers_declare(templates, env):
    """One alarm per declared failure mode (a node's: one per cache node), named and set as declared."""
    cfg = config.get(env)
    present = set(resources_of_type(templates[env]["operations"], ALARM))
    built = built_alarms(templates, env)
    assert present == set(built), "an alarm in the template that no tier declares, or one declared and not built"
    per_node = [s for s in tiers.ALARMS if s.per_cache_node]
    assert len(present) == len(tiers.ALARMS) + len(per_node) * (cfg.cache_node_count - 1)
    for title, (p, alarm) in built.items():
        spec = alarm.spec
        assert p["AlarmName"] == names.alarm(env, alarm.name), title
        assert (p["Namespace"], p["MetricName"], p["ComparisonOperator"]) == (
            spec.namespace, spec.metric, spec.comparison), title
        assert p.get("Statistic", p.get("ExtendedStatistic")) == spec.statistic, title
        assert p["EvaluationPeriods"] == p["DatapointsToAlarm"] == spec.periods, "every period must breach"
        assert p["Period"] == spec.period and p["TreatMissingData"] == spec.missing, title


def test_thresholds_given_by_a_setting_follow_each_environment(templates):
    """A threshold named by a setting is that environment's value, in the metric's unit (GiB, MiB to bytes)."""
    by_setting = [s for s in tiers.ALARMS if isinstance(s.threshold, str)]
    assert {s.threshold for s in by_setting} >= {"db_min_free_storage_gib", "db_min_freeable_memory_mib",
                                                 "db_max_connections"}, "the database's size sets its alarms"
    units = {"_gib": alarms.GIB, "_mib": alarms.MIB}
    for s in by_setting:  # the metrics count bytes; a setting names its unit
        assert s.scale == next((v for suffix, v in units.items() if s.threshold.endswith(suffix)), 1), s.title
    for env, cfg in config.ENVIRONMENTS.items():
        for title, (p, alarm) in built_alarms(templates, env).items():
            spec = alarm.spec
            expected = getattr(cfg, spec.threshold) * spec.scale if spec in by_setting else spec.threshold
            assert p["Threshold"] == expected, (env, title)
    assert any(len({getattr(cfg, s.threshold) for cfg in config.ENVIRONMENTS.values()}) > 1 for s in by_setting), \
        "no threshold setting differs between environments: a constant would pass too"


def test_each_alarm_watches_a_resource_of_the_tier_that_declares_it(templates):
    """Tiers own their alarms: every dimension resolves, through the parent, to a resource of the declaring tier."""
    for env in templates:
        for title, (p, alarm) in built_alarms(templates, env).items():
            for dimension in p["Dimensions"]:
                if (p["Namespace"], dimension["Name"]) in CONSTANT_DIMENSIONS:
                    continue
                type_ = DIMENSIONS[(p["Namespace"], dimension["Name"])]
                value = dimension["Value"]
                if isinstance(value, dict) and "Fn::Sub" in value:  # a cache node: <group id>-00N
                    value = {"Ref": re.fullmatch(r"\$\{(\w+)\}-\d{3}", value["Fn::Sub"]).group(1)}
                found = named_resources(templates, env, "operations", value, type_)
                assert found and {t for t, _id in found} == {alarm.spec.tier}, (env, title, dimension, found)


def test_the_operations_tier_consumes_what_its_alarms_watch_and_its_dashboard_reads(templates):
    """Its Parameters are derived: the ops e-mail, every alarm dimension's contract, the dashboard's contracts;
    and each one is used."""
    [operations_tier] = [t for t in tiers.TIERS if t.name == "operations"]
    assert tiers.TIERS[-1] is operations_tier, "last: it consumes what every other tier produces"
    watched = {c for s in tiers.ALARMS for _n, c in s.dimensions}
    assert set(operations_tier.consumes) == {contracts.OPS_EMAIL, *watched, *dashboard.CONSUMES}
    for env in templates:
        t = templates[env]["operations"]
        used = json.dumps({k: v for k, v in t.items() if k != "Parameters"})
        unused = [n for n in t["Parameters"] if f'"Ref": "{n}"' not in used and f"${{{n}}}" not in used]
        assert unused == [], f"{env}: parameters nothing reads"


def test_an_alarm_declared_in_a_new_tier_reaches_the_ops_topic_and_the_runbook_without_editing_operations():
    """What a new tier (uploads, say) does to add a failure mode: declare it beside its resources. The registry
    collects it, the operations tier consumes its contract and builds it, the runbook shows it."""
    queue = contracts.Contract("UploadsQueueName", "Name of the uploads queue")
    spec = AlarmSpec("UploadsBacklogAlarm", "uploads-backlog", "AWS/SQS", "ApproximateAgeOfOldestMessage",
                     (("QueueName", queue),), "Maximum", alarms.GT, 600, "notBreaching", "Uploads wait",
                     "The queue", "Drain it")
    uploads = tiers.Tier("uploads", "UploadsStack", lambda cfg: None, (), (queue,), (spec,))
    built = tiers.operations_tier("operations", "OperationsStack", (*tiers.WATCHED, uploads))
    assert queue in built.consumes
    t = built.build(config.get("dev")).to_dict()
    alarm = t["Resources"]["UploadsBacklogAlarm"]["Properties"]
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Ref": queue.name}}]
    assert alarm["AlarmActions"] == alarm["OKActions"] == [{"Ref": "OpsTopic"}]
    assert "| `uploads-backlog` (uploads) | AWS/SQS ApproximateAgeOfOldestMessage | Maximum > 600" in \
        runbook.markdown(tiers.collect_alarms((*tiers.WATCHED, uploads)))
    assert "${UploadsBacklogAlarm.Arn}" in t["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]


FIRST = tiers.ALARMS[0]


@pytest.mark.parametrize("broken, message", [
    (dataclasses.replace(FIRST, dimensions=(("QueueName", contracts.DEAD_LETTER_QUEUE_NAME),)),
     f"alarm {FIRST.title} watches DeadLetterQueueName, which tier {FIRST.tier} does not produce"),
    (dataclasses.replace(FIRST, dimensions=()), "has no dimensions"),
    (dataclasses.replace(FIRST, missing="missing"), "missing data 'missing'; accepted: notBreaching"),
    (dataclasses.replace(FIRST, threshold="db_min_free_storage"), "'db_min_free_storage' is no setting"),
    (dataclasses.replace(FIRST, comparison="GreaterThanUpperThreshold"), "comparison 'GreaterThanUpperThreshold'"),
    (dataclasses.replace(FIRST, statistic="Median"), "statistic 'Median'"),
    (dataclasses.replace(FIRST, per_cache_node=True), "a per-node alarm's title starts with Cache"),
    (dataclasses.replace(FIRST, title=tiers.ALARMS[1].title), f"alarm title {tiers.ALARMS[1].title} declared more"),
    (dataclasses.replace(FIRST, name=tiers.ALARMS[1].name), f"alarm name {tiers.ALARMS[1].name} declared more"),
])
def test_the_operations_tier_refuses_an_alarm_declared_wrongly(broken, message):
    """A WiringError (one line and exit 2 from `python -m generator`, see test_error_kinds) names the alarm."""
    watched = tuple(dataclasses.replace(t, alarms=(broken, *t.alarms[1:])) if t.name == FIRST.tier else t
                    for t in tiers.WATCHED)
    built = tiers.operations_tier("operations", "OperationsStack", watched)
    with pytest.raises(WiringError, match=re.escape(message)):
        built.build(config.get("dev"))


def test_the_known_gap_is_covered_by_the_executions_failed_alarm(templates):
    """NotifyFailure failing ends the execution FAILED: one failed execution is enough to alarm, to the ops topic."""
    alarm = templates["dev"]["operations"]["Resources"]["ExecutionsFailedAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == ("AWS/States", "ExecutionsFailed", "Sum")
    assert (alarm["ComparisonOperator"], alarm["Threshold"], alarm["EvaluationPeriods"]) == (
        "GreaterThanThreshold", 0, 1)
    assert alarm["TreatMissingData"] == "notBreaching"


# --------------------------------------------------------------------------------------------------
# The dashboard

PLACEHOLDER = re.compile(r"\$\{([^}!]+)\}")


def dashboards(templates: dict):
    found = list(each_resource(templates, "AWS::CloudWatch::Dashboard"))
    assert {env for _l, env, *_ in found} == set(templates), "one dashboard per environment"
    return found


def dashboard_body(resource: dict) -> tuple[dict, set[str]]:
    """The body as JSON with every ${Name} replaced by a token "@Name@", and the names substituted."""
    text = resource["Properties"]["DashboardBody"]["Fn::Sub"]
    assert isinstance(text, str), "Fn::Sub with its variables inline"
    return json.loads(PLACEHOLDER.sub(lambda m: f"@{m.group(1)}@", text)), set(PLACEHOLDER.findall(text))


def problems_dashboard(templates: dict) -> list[str]:
    problems = []
    for label, env, tier, _id, r in dashboards(templates):
        body, _ = dashboard_body(r)
        resources = templates[env][tier]["Resources"]

        def named(value, type_, env=env, tier=tier):
            token = re.fullmatch(r"@([^@]+)@(-\d{3})?", value)
            if token:
                return named_resources(templates, env, tier, {"Ref": token.group(1)}, type_)
            return named_resources(templates, env, tier, value, type_)

        cells = set()
        for i, w in enumerate(body["widgets"]):
            where = f"{label} widget {i} {w['properties'].get('title')!r}"
            if w["x"] + w["width"] > 24:
                problems.append(f"{where}: wider than the 24-column grid")
            for x in range(w["x"], w["x"] + w["width"]):
                for y in range(w["y"], w["y"] + w["height"]):
                    if (x, y) in cells:
                        problems.append(f"{where}: overlaps another widget at {(x, y)}")
                        break
                    cells.add((x, y))
            for alarm in w["properties"].get("alarms", []):
                title = re.fullmatch(r"@(\w+)\.Arn@", alarm)
                if not title or resources.get(title.group(1), {}).get("Type") != ALARM:
                    problems.append(f"{where}: {alarm} is no alarm of this template")
            for metric in w["properties"].get("metrics", []):
                namespace, name, *rest = metric
                pairs = [x for x in rest if not isinstance(x, dict)]
                dims = dict(zip(pairs[::2], pairs[1::2], strict=True))
                problems += dimension_problems(templates, env, tier, f"{where} {name}", namespace, dims, named)
    return problems


def test_the_dashboard_body_is_json_whose_widgets_read_only_this_environments_resources(templates):
    assert problems_dashboard(templates) == []


def test_the_dashboard_shows_health_traffic_and_progress(templates):
    for _label, env, _tier, _id, r in dashboards(templates):
        body, names_used = dashboard_body(r)
        titles = [w["properties"]["title"] for w in body["widgets"]]
        for wanted in ("healthy", "Submissions", "Keeping up", "Outcomes", "duration", "API traffic", "Database",
                       "Cache"):
            assert any(wanted in t for t in titles), (env, wanted, titles)
        alarm_titles = {i for i, x in templates[env]["operations"]["Resources"].items() if x["Type"] == ALARM}
        assert {n.removesuffix(".Arn") for n in names_used if n.endswith(".Arn")} == alarm_titles, "every alarm shown"


def test_rule_dashboard_catches_a_metric_of_a_resource_that_does_not_exist(templates):
    changed = copy.deepcopy(templates)
    dashboard = changed["dev"]["operations"]["Resources"]["Dashboard"]["Properties"]["DashboardBody"]
    dashboard["Fn::Sub"] = dashboard["Fn::Sub"].replace("${DatabaseIdentifier}", "other-database", 1)
    found = problems_dashboard(changed)
    assert len(found) == 1 and "other-database names no AWS::RDS::DBInstance of dev" in found[0], found


# --------------------------------------------------------------------------------------------------
# The runbook

def test_the_runbook_in_the_docs_has_one_row_per_alarm_as_generated():
    block = next(b for b in docs.BLOCKS if b.marker == "runbook")
    assert block.path == "docs/operations.md" and block.render({}) == runbook.markdown()
    rows = [line for line in block.render({}).splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == [alarms.runbook_key(spec) for spec in tiers.ALARMS]


@pytest.mark.parametrize("env", list(config.ENVIRONMENTS))
def test_every_alarm_names_a_runbook_row_that_exists(templates, env):
    rows = {re.match(r"\| `([^`]+)`", line).group(1) for line in runbook.markdown().splitlines()[2:]}
    assert len(rows) == len(tiers.ALARMS), "one row per declared alarm"
    for title, (p, _alarm) in built_alarms(templates, env).items():
        key = p["AlarmDescription"].rpartition("Runbook: docs/operations.md, ")[2]
        assert key in rows, (title, key)
        assert re.fullmatch(key.replace("NNN", r"\d{3}"), p["AlarmName"].removeprefix(names.alarm(env, ""))), title
