"""operations: the ops topic every alarm notifies (ALARM and OK), the alarms every tier declares, and the dashboard.

Last in the registry: each tier declares its failure modes as ALARMS (generator/alarms.py) on resources it
produces; the registry collects them and builds this tier with them (`build(cfg, specs)`), so this tier consumes
exactly the contracts its alarms and its dashboard (generator/dashboard.py) read, and a new alarm is an edit in
its own tier only. The ops topic has its own key and its own policy: when the error topic (or its key) fails,
the alarms still reach a person by this other road.
"""

from __future__ import annotations

import json

from troposphere import Equals, GetAtt, Not, Ref, Sub, Template
from troposphere.cloudwatch import Alarm, Dashboard, MetricDimension
from troposphere.sns import SubscriptionResource, Topic

from generator import alarms, blocks, contracts, dashboard, names
from generator.alarms import AlarmSpec
from generator.config import EnvConfig

C = contracts
PRODUCES = (C.OPS_TOPIC_ARN, C.DASHBOARD_NAME)

HAS_EMAIL = "HasOpsEmail"


def consumes(specs: tuple[AlarmSpec, ...]) -> tuple[contracts.Contract, ...]:
    """The ops e-mail (deploy time), then what the alarms watch and the dashboard reads, each once."""
    return tuple(dict.fromkeys((C.OPS_EMAIL, *alarms.watched_contracts(specs), *dashboard.CONSUMES)))


def build(cfg: EnvConfig, specs: tuple[AlarmSpec, ...]) -> Template:
    t = blocks.new_template(cfg, "Video processing operations: ops topic, alarms of every tier, dashboard")
    p = blocks.parameters(t, consumes(specs))
    t.add_condition(HAS_EMAIL, Not(Equals(p[C.OPS_EMAIL], "")))

    # Its own key: a disabled or broken notification key must not silence the alarms as well.
    key = blocks.kms_key(t, cfg, "OpsKey", "Encrypts the ops topic", names.env_prefixed(cfg.name, "ops"), [
        blocks.service_key_user_statement("cloudwatch", "CloudWatchAlarmsPublish", blocks.SNS_TOPIC_CONTEXT,
                                          blocks.arn("sns", names.topic("ops", cfg.name))),
        blocks.via_services_statement(["sns"]),
    ])
    topic = t.add_resource(Topic(
        "OpsTopic",
        TopicName=names.topic("ops", cfg.name),
        DisplayName="Video Processing Operations Alarms",
        FifoTopic=False,
        KmsMasterKeyId=GetAtt(key, "Arn"),
        Tags=blocks.tags(cfg),
    ))
    blocks.topic_policy(t, "OpsTopicPolicy", topic, blocks.alarms_publish_statement(
        "AlarmsOfThisEnvironmentPublish", [Ref(topic)], names.alarms_pattern(cfg.name)))
    t.add_resource(SubscriptionResource(
        "OpsTopicEmailSubscription",
        Condition=HAS_EMAIL,
        TopicArn=Ref(topic),
        Protocol="email",
        Endpoint=p[C.OPS_EMAIL],
    ))

    titles = []
    for alarm in alarms.expanded(cfg, specs):
        spec = alarm.spec
        statistic = ({"ExtendedStatistic": spec.statistic} if spec.statistic.startswith("p")
                     else {"Statistic": spec.statistic})
        titles.append(t.add_resource(Alarm(
            alarm.title,
            AlarmName=names.alarm(cfg.name, alarm.name),
            AlarmDescription=f"{spec.means} ({cfg.name}). Runbook: docs/operations.md, {alarms.runbook_key(spec)}",
            Namespace=spec.namespace,
            MetricName=spec.metric,
            Dimensions=[MetricDimension(Name=name, Value=value) for name, value in alarm.dimensions.items()],
            Period=spec.period,
            EvaluationPeriods=spec.periods,
            DatapointsToAlarm=spec.periods,
            Threshold=spec.threshold_for(cfg),
            ComparisonOperator=spec.comparison,
            TreatMissingData=spec.missing,
            ActionsEnabled=True,
            AlarmActions=[Ref(topic)],
            OKActions=[Ref(topic)],
            **statistic,
        )).title)

    board = t.add_resource(Dashboard(
        "Dashboard",
        DashboardName=names.dashboard(cfg.name),
        DashboardBody=Sub(json.dumps(dashboard.body(cfg, titles), sort_keys=True)),
    ))

    blocks.output(t, C.OPS_TOPIC_ARN, Ref(topic), cfg)
    blocks.output(t, C.DASHBOARD_NAME, Ref(board))
    return t
