"""Operations: the operations tier builds exactly the alarms the tiers declare (ALARMS, generator/alarms.py),
from the declaration and the environment's settings, on resources of the declaring tier, each with its runbook
row, rather than repeating the generated values; and its dashboard shows what an operator needs.

The generic rules over every template (every alarm notifies the ops topic in ALARM and OK and treats missing
data on purpose, every metric an alarm or the dashboard reads names a resource of the same environment, every
resource with a failure mode has its alarms) are rules VP601-VP605 in generator/rules/operations.py, proved on
their fixtures and run over every environment by tests/test_security_rules.py.
"""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from generator import alarms, config, contracts, dashboard, docs, names, runbook, tiers
from generator.alarms import AlarmSpec
from generator.errors import WiringError
from generator.functions.video_jobs import contract
from generator.rules import operations as operation_rules
from generator.rules.operations import ALARM, CONSTANT_DIMENSIONS, DIMENSIONS, dashboard_body, named_resources
from generator.tiers import operations

from conftest import each_resource, resources_of_type, sources


def test_the_failure_mode_table_covers_every_watched_type_present(templates):
    """Each failure-mode type occurs, and each environment has an error topic (else rule VP604 would prove
    nothing about them over the real templates)."""
    present = {r["Type"] for *_, r in each_resource(templates)}
    assert set(operation_rules.FAILURE_MODES) <= present
    assert all(operation_rules.error_topics(templates, env) for env in templates)
    assert all(any(e == env for _l, e, *_ in each_resource(templates, ALARM)) for env in templates), "no alarm"


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

def dashboards(templates: dict):
    found = list(each_resource(templates, operation_rules.DASHBOARD))
    assert {env for _l, env, *_ in found} == set(templates), "one dashboard per environment"
    return found


def test_the_dashboard_shows_health_traffic_and_progress(templates):
    for _label, env, _tier, _id, r in dashboards(templates):
        body, names_used = dashboard_body(r)
        titles = [w["properties"]["title"] for w in body["widgets"]]
        for wanted in ("healthy", "Submissions", "Keeping up", "Outcomes", "duration", "API traffic", "Database",
                       "Cache"):
            assert any(wanted in t for t in titles), (env, wanted, titles)
        alarm_titles = {i for i, x in templates[env]["operations"]["Resources"].items() if x["Type"] == ALARM}
        assert {n.removesuffix(".Arn") for n in names_used if n.endswith(".Arn")} == alarm_titles, "every alarm shown"


def test_the_dashboard_shows_uploads_and_bytes_in_and_out_through_filters_the_media_bucket_has(templates):
    """S3 publishes request metrics (PutRequests, BytesUploaded, BytesDownloaded) only for a metrics filter the
    bucket configures: a FilterId the bucket lacks draws an empty graph that no rule of VP6xx notices."""
    for _label, env, _tier, _id, r in dashboards(templates):
        body, _names = dashboard_body(r)
        shown = [(m[1], m[m.index("FilterId") + 1]) for w in body["widgets"]
                 for m in w["properties"].get("metrics", []) if m[0] == "AWS/S3" and "FilterId" in m]
        assert {"PutRequests", "BytesUploaded", "BytesDownloaded"} <= {metric for metric, _f in shown}, env
        [bucket] = [x["Properties"] for x in templates[env]["media"]["Resources"].values()
                    if x["Type"] == "AWS::S3::Bucket"]
        filters = {f["Id"]: f["Prefix"] for f in bucket["MetricsConfigurations"]}
        assert {f for _m, f in shown} <= set(filters), (env, shown, filters)
        assert {("BytesUploaded", "sources"), ("BytesDownloaded", "outputs")} <= set(shown), "in and out"
        assert filters["sources"] == contract.SOURCES_PREFIX and filters["outputs"] == contract.OUTPUTS_PREFIX


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
