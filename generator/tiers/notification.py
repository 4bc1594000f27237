"""notification: completion and error topics, their KMS key and a dead-letter queue (ALARMS: their failure modes).

What the sketch's docstring promised and its code lacked: KMS encryption and an SQS dead-letter
queue for notifications that could not be delivered.
"""

from __future__ import annotations

from awacs import sqs as sqs_actions
from awacs.aws import Allow, ArnEquals, Condition, PolicyDocument, Statement
from troposphere import Equals, GetAtt, Not, Ref, Sub, Template
from troposphere.sns import SubscriptionResource, Topic
from troposphere.sqs import Queue, QueuePolicy

from generator import aws_facts, blocks, contracts, names
from generator.alarms import GT, AlarmSpec
from generator.config import EnvConfig

CONSUMES = (contracts.NOTIFICATION_EMAIL,)
PRODUCES = (contracts.COMPLETION_TOPIC_ARN, contracts.COMPLETION_TOPIC_NAME, contracts.ERROR_TOPIC_ARN,
            contracts.ERROR_TOPIC_NAME, contracts.NOTIFICATION_KEY_ARN, contracts.DEAD_LETTER_QUEUE_ARN,
            contracts.DEAD_LETTER_QUEUE_NAME)

# Failure modes (generator/alarms.py): the operations tier builds them, the runbook shows them.
ALARMS = (
    AlarmSpec(
        "ErrorNotificationsFailedAlarm", "error-notifications-failed", "AWS/SNS", "NumberOfNotificationsFailed",
        (("TopicName", contracts.ERROR_TOPIC_NAME),), "Sum", GT, 0, "notBreaching",
        "The error topic accepted a message but could not deliver it to a subscriber",
        "The error topic's subscriptions (confirmed?) and the dead-letter queue, which holds what failed",
        "Fix or confirm the subscription; replay the messages from the dead-letter queue"),
    AlarmSpec(
        "DeadLetterQueueAlarm", "dead-letter-queue-not-empty", "AWS/SQS", "ApproximateNumberOfMessagesVisible",
        (("QueueName", contracts.DEAD_LETTER_QUEUE_NAME),), "Maximum", GT, 0, "notBreaching",
        "Notifications failed delivery to a subscriber, ended executions could not be handed to the scheduler, or "
        "the scheduler failed on an event after Lambda's retries; they wait in the dead-letter queue (kept 14 days)",
        "The messages in the queue (SQS console, poll): a notification's subscription or topic, or an execution "
        "status change event (the scheduler's errors alarm and log group)",
        "Fix the subscription and re-publish each notification to its topic; an execution's end needs nothing once "
        "the scheduler works again (the reconciliation releases its slot); then delete the messages"),
)

DLQ_RETENTION_SECONDS = aws_facts.SQS_MAX_RETENTION_SECONDS  # time to find and replay failed deliveries
HAS_EMAIL = "HasNotificationEmail"

TOPICS = (
    # (logical id, kind in the physical name, display name, arn contract, name contract)
    ("CompletionTopic", "completion", "Video Processing Completion Notifications",
     contracts.COMPLETION_TOPIC_ARN, contracts.COMPLETION_TOPIC_NAME),
    ("ErrorTopic", "error", "Video Processing Error Notifications",
     contracts.ERROR_TOPIC_ARN, contracts.ERROR_TOPIC_NAME),
)

# Services that encrypt with the key as themselves: EventBridge for the dead-letter queue (ended executions it
# could not hand to the scheduler), SNS for the queue (redrive). Nothing publishes to the error topic through
# EventBridge: the state machine and the jobs tier's scheduler publish with their roles, through SNS (the
# account's principals, below). CloudWatch alarms publish to the operations tier's ops topic, under its own key,
# not here. The queue's name is generated: its context names this account's queues.
def key_user_statements() -> list[Statement]:
    account_queues = blocks.arn("sqs", "*")
    return [
        blocks.service_key_user_statement("events", "EventBridgeDeadLettersExecutionEnds",
                                          blocks.SQS_QUEUE_CONTEXT, account_queues),
        blocks.service_key_user_statement("sns", "SnsDeliversToDeadLetterQueue", blocks.SQS_QUEUE_CONTEXT,
                                          account_queues),
    ]


def execution_end_rule_arn(cfg: EnvConfig) -> Sub:
    return blocks.arn("events", f"rule/{names.execution_end_rule(cfg.name)}")


def source_arrived_rule_arn(cfg: EnvConfig) -> Sub:
    return blocks.arn("events", f"rule/{names.source_arrived_rule(cfg.name)}")


def build(cfg: EnvConfig) -> Template:
    t = blocks.new_template(cfg, "Video processing notifications: encrypted SNS topics and dead-letter queue")
    email = blocks.parameters(t, CONSUMES)[contracts.NOTIFICATION_EMAIL]
    t.add_condition(HAS_EMAIL, Not(Equals(email, "")))

    key = blocks.kms_key(t, cfg, "NotificationKey", "Encrypts the notification topics and dead-letter queue",
                         names.env_prefixed(cfg.name, "notifications"), [
        *key_user_statements(),
        # The state machine and the scheduler publish, the scheduler's failed events are dead-lettered (Lambda
        # sends them as its role) and operators read the dead-letter queue: through SNS and SQS only.
        blocks.via_services_statement(["sns", "sqs"]),
    ])

    topics = {}
    for title, kind, display, arn_contract, name_contract in TOPICS:
        topic = t.add_resource(Topic(
            title,
            TopicName=names.topic(kind, cfg.name),
            DisplayName=display,
            FifoTopic=False,
            KmsMasterKeyId=GetAtt(key, "Arn"),
            Tags=blocks.tags(cfg),
        ))
        topics[title] = topic
        blocks.output(t, arn_contract, Ref(topic), cfg)
        blocks.output(t, name_contract, GetAtt(topic, "TopicName"), cfg)

    topic_refs = [Ref(topics[title]) for title, *_ in TOPICS]
    # One policy per topic, each naming only its own topic.
    blocks.topic_policy(t, "CompletionTopicPolicy", topics["CompletionTopic"])
    # Publishers of this account need no statement here: their roles' policies grant sns:Publish (the state
    # machine's, the scheduler's), and no service publishes as itself.
    blocks.topic_policy(t, "ErrorTopicPolicy", topics["ErrorTopic"])

    dlq = t.add_resource(Queue(
        "DeadLetterQueue",
        KmsMasterKeyId=GetAtt(key, "Arn"),
        KmsDataKeyReusePeriodSeconds=300,
        MessageRetentionPeriod=DLQ_RETENTION_SECONDS,
        Tags=blocks.tags(cfg),
        **blocks.retention_policies(cfg),
    ))
    t.add_resource(QueuePolicy(
        "DeadLetterQueuePolicy",
        Queues=[Ref(dlq)],
        PolicyDocument=PolicyDocument(Version="2012-10-17", Statement=[
            blocks.deny_insecure_transport([sqs_actions.Action("*")], [GetAtt(dlq, "Arn")]),
            Statement(
                Sid="TopicsRedriveFailedDeliveries", Effect=Allow, Principal=blocks.service_principal("sns"),
                Action=[sqs_actions.SendMessage], Resource=[GetAtt(dlq, "Arn")],
                Condition=Condition(ArnEquals("aws:SourceArn", topic_refs)),
            ),
            # The scheduler's failed asynchronous events arrive as its role (Lambda sends them with the function's
            # credentials): its identity policy grants sqs:SendMessage and the key, nothing is needed here.
            Statement(
                # The jobs tier's rules dead-letter the ended executions and the uploaded sources they cannot hand
                # to the scheduler here.
                Sid="EventRulesDeadLetterUndeliveredEnds", Effect=Allow,
                Principal=blocks.service_principal("events"), Action=[sqs_actions.SendMessage],
                Resource=[GetAtt(dlq, "Arn")],
                Condition=Condition(ArnEquals("aws:SourceArn", [execution_end_rule_arn(cfg),
                                                                source_arrived_rule_arn(cfg)])),
            ),
        ]),
    ))

    for title, *_ in TOPICS:
        t.add_resource(SubscriptionResource(
            f"{title}EmailSubscription",
            Condition=HAS_EMAIL,
            TopicArn=Ref(topics[title]),
            Protocol="email",
            Endpoint=email,
            RedrivePolicy={"deadLetterTargetArn": GetAtt(dlq, "Arn")},
        ))

    blocks.output(t, contracts.NOTIFICATION_KEY_ARN, GetAtt(key, "Arn"))
    blocks.output(t, contracts.DEAD_LETTER_QUEUE_ARN, GetAtt(dlq, "Arn"))
    blocks.output(t, contracts.DEAD_LETTER_QUEUE_NAME, GetAtt(dlq, "QueueName"))
    return t
