"""notification: the sketch's two topics, now encrypted, TLS-only, with a dead-letter queue and its alarm."""

from __future__ import annotations

import pytest

from conftest import one_resource, resources_of_type, sources, statements

ENVS = ("dev", "staging", "prod")


def built_from(templates, value, env="dev") -> set[tuple[str, str]]:
    return sources(templates, env, "notification", value)


@pytest.mark.parametrize("env", ENVS)
def test_two_standard_topics_with_the_sketchs_names_encrypted_with_the_notification_key(templates, env):
    topics = resources_of_type(templates[env]["notification"], "AWS::SNS::Topic")
    assert {k: (v["Properties"]["TopicName"], v["Properties"]["DisplayName"]) for k, v in topics.items()} == {
        "CompletionTopic": (f"video-processing-completion-{env}", "Video Processing Completion Notifications"),
        "ErrorTopic": (f"video-processing-error-{env}", "Video Processing Error Notifications"),
    }
    for topic in topics.values():
        assert topic["Properties"]["FifoTopic"] is False
        key = built_from(templates, topic["Properties"]["KmsMasterKeyId"], env)
        assert key == {("notification", "NotificationKey")}


def test_key_rotates_and_admits_only_the_account_and_the_services_that_publish_or_deliver(templates):
    key = templates["dev"]["notification"]["Resources"]["NotificationKey"]["Properties"]
    assert key["EnableKeyRotation"] is True
    by_sid = {s["Sid"]: s for s in statements(key["KeyPolicy"])}
    # EventBridge only dead-letters (the ended executions it could not hand to the scheduler): nothing publishes
    # to a topic as EventBridge any more.
    assert set(by_sid) == {"AccountAdministers", "AccountPrincipalsThroughServices", "SnsDeliversToDeadLetterQueue",
                           "EventBridgeDeadLettersExecutionEnds"}
    account_queues = {"Fn::Sub": "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:*"}
    assert by_sid["EventBridgeDeadLettersExecutionEnds"]["Condition"]["StringLike"] == {
        "kms:EncryptionContext:aws:sqs:arn": account_queues}
    assert "kms:Decrypt" not in by_sid["AccountAdministers"]["Action"], "the account administers, never uses"
    via = by_sid["AccountPrincipalsThroughServices"]["Condition"]["StringEquals"]["kms:ViaService"]
    assert [v["Fn::Sub"] for v in via] == ["sns.${AWS::Region}.amazonaws.com", "sqs.${AWS::Region}.amazonaws.com"]
    services = sorted(p for s in statements(key["KeyPolicy"]) for p in s["Principal"].get("Service", []))
    # No CloudWatch: alarms publish to the operations tier's ops topic, under its own key.
    assert services == ["events.amazonaws.com", "sns.amazonaws.com"]
    # Scoped by the encryption context the topic or queue sets (tests/test_account_defects.py, defect 5).
    for s in statements(key["KeyPolicy"]):
        if "Service" in s["Principal"]:
            assert list(s["Condition"]) == ["StringLike"], s["Sid"]


@pytest.mark.parametrize("env", ENVS)
def test_every_topic_denies_every_request_without_tls(templates, env):
    """Anyone, every topic-policy action, on every topic of the tier (one policy each): plain text is refused."""
    t = templates[env]["notification"]
    topics = {("notification", title) for title in resources_of_type(t, "AWS::SNS::Topic")}
    policies = resources_of_type(t, "AWS::SNS::TopicPolicy").values()
    assert set().union(*(built_from(templates, p["Properties"]["Topics"], env) for p in policies)) == topics
    for policy in (p["Properties"] for p in policies):
        [deny] = [s for s in statements(policy["PolicyDocument"]) if s["Effect"] == "Deny"]
        assert deny["Principal"] in ("*", {"AWS": "*"}) and "sns:Publish" in deny["Action"]
        assert built_from(templates, deny["Resource"], env) == built_from(templates, policy["Topics"], env)
        assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_dead_letter_queue_keeps_messages_14_days_encrypted_and_tls_only(templates):
    t = templates["dev"]["notification"]
    queue = one_resource(t, "AWS::SQS::Queue")
    assert queue["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert built_from(templates, queue["Properties"]["KmsMasterKeyId"]) == {("notification", "NotificationKey")}
    policy = one_resource(t, "AWS::SQS::QueuePolicy")["Properties"]["PolicyDocument"]
    assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
               for s in statements(policy))
    allows = [s for s in statements(policy) if s["Effect"] == "Allow"]
    # Only SNS (the failed deliveries of the subscriptions) and EventBridge (the jobs rule's undelivered ended
    # executions) may put messages in as services, and only send; the scheduler's failed events come as its role.
    assert sorted(a["Principal"]["Service"][0] for a in allows) == ["events.amazonaws.com", "sns.amazonaws.com"]
    for allow in allows:
        assert allow["Action"] in ("sqs:SendMessage", ["sqs:SendMessage"])


def test_the_dead_letter_queue_has_no_alarm_here_but_its_name_for_the_operations_alarm(templates):
    assert not resources_of_type(templates["dev"]["notification"], "AWS::CloudWatch::Alarm"), "operations owns alarms"
    output = templates["dev"]["notification"]["Outputs"]["DeadLetterQueueName"]
    assert built_from(templates, output["Value"]) == {("notification", "DeadLetterQueue")}


def test_email_subscriptions_exist_only_with_an_address_and_redrive_to_the_queue(templates):
    t = templates["dev"]["notification"]
    assert t["Parameters"]["NotificationEmail"]["Type"] == "String"
    assert t["Conditions"]["HasNotificationEmail"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "NotificationEmail"}, ""]}]}
    subs = resources_of_type(t, "AWS::SNS::Subscription")
    topics = [built_from(templates, s["Properties"]["TopicArn"]) for s in subs.values()]
    assert sorted(map(sorted, topics)) == [[("notification", "CompletionTopic")], [("notification", "ErrorTopic")]]
    for s in subs.values():
        assert s["Condition"] == "HasNotificationEmail" and s["Properties"]["Protocol"] == "email"
        assert built_from(templates, s["Properties"]["Endpoint"]) == {("main", "NotificationEmail")}
        assert built_from(templates, s["Properties"]["RedrivePolicy"]) == {("notification", "DeadLetterQueue")}


@pytest.mark.parametrize("env", ENVS)
def test_outputs_and_exports_as_in_the_sketch(templates, env):
    outputs = templates[env]["notification"]["Outputs"]
    for name in ("CompletionTopicArn", "CompletionTopicName", "ErrorTopicArn", "ErrorTopicName"):
        assert outputs[name]["Export"]["Name"] == f"{name}-{env}", "the sketch's export names, per environment"
        assert built_from(templates, outputs[name]["Value"], env) == {("notification", name.removesuffix("Arn")
                                                                                      .removesuffix("Name"))}
        assert outputs[name]["Description"]
    assert {"NotificationKeyArn", "DeadLetterQueueArn"} <= set(outputs)


@pytest.mark.parametrize("env, policy", [("dev", "Delete"), ("prod", "Retain")])
def test_key_and_queue_are_retained_in_prod(templates, env, policy):
    r = templates[env]["notification"]["Resources"]
    for title in ("NotificationKey", "DeadLetterQueue"):
        assert (r[title]["DeletionPolicy"], r[title]["UpdateReplacePolicy"]) == (policy, policy)


@pytest.mark.parametrize("env", ENVS)
def test_no_service_may_publish_to_the_topics_only_this_accounts_roles_through_their_policies(templates, env):
    """The state machine and the scheduler publish with their roles; EventBridge no longer publishes to the error
    topic (the scheduler reports timeouts and aborts), and alarms publish to the ops topic (operations)."""
    policies = resources_of_type(templates[env]["notification"], "AWS::SNS::TopicPolicy").values()
    allows = [s for p in policies for s in statements(p["Properties"]["PolicyDocument"]) if s["Effect"] == "Allow"]
    assert allows == []
