"""CloudFormation workarounds: small patches that let moto 5.2.5 run this project's templates as AWS does.

Each workaround is one function; `apply_all` applies them in-process for `deploytools.local_aws serve`
before the server starts, and refuses any moto but the layer's MOTO_VERSION. Each has a canary in
tests/test_moto_workarounds.py (through tests/moto_probe.py) that asserts the *unpatched* behaviour is still
broken: when a moto upgrade fixes one, its canary fails and the workaround can go. The templates never change
to please the emulator; what moto cannot model is faked here and listed in docs/deploy.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from moto.cloudformation import models as cfn_models
from moto.cloudformation import parsing as cfn_parsing
from moto.core.common_models import CloudFormationModel

from deploytools.moto_layer import require_moto_version


def _backend(account_id: str, region: str) -> cfn_models.CloudFormationBackend:
    return cfn_models.cloudformation_backends[account_id][region]


def _resource_event(stack: cfn_models.Stack | None, logical_id: str, resource_type: str, status: str,
                    physical_id: str = "", reason: str | None = None) -> None:
    if stack is None:
        return
    stack.events.append(cfn_models.Event(
        stack_id=stack.stack_id, stack_name=stack.name, logical_resource_id=logical_id,
        physical_resource_id=physical_id, resource_type=resource_type, resource_status=status,
        resource_status_reason=reason, resource_properties=None,
    ))


def _stack_of(resources_map: Any, account_id: str, region: str) -> cfn_models.Stack | None:
    return _backend(account_id, region).stacks.get(resources_map.stack_id)


# ---------------------------------------------------------------------------------------------------------
# 1. Fn::GetAtt [NestedStack, Outputs.Name]


def nested_stack_output_getatt() -> None:
    """moto 5.2.5: the nested-stack model has no get_cfn_attribute, so `Fn::GetAtt [Child, Outputs.X]`
    (how the parent wires one tier's Output into the next tier's Parameter) resolves to nothing."""

    def get_cfn_attribute(self: cfn_models.Stack, attribute_name: str) -> Any:
        if attribute_name.startswith("Outputs."):
            key = attribute_name.split(".", 1)[1]
            for output in self.outputs or []:
                if output["OutputKey"] == key:
                    return output["OutputValue"]
            raise cfn_models.ValidationError(
                message=f"Output {key} does not exist in nested stack {self.name}")
        raise NotImplementedError(f"GetAtt {attribute_name} on a nested stack")

    cfn_models.Stack.get_cfn_attribute = get_cfn_attribute


# ---------------------------------------------------------------------------------------------------------
# 2. After execute-change-set: outputs, parameters, and a change set diff that sees parameter changes


def change_set_execution_state() -> None:
    """moto 5.2.5: executing a change set applies the resources but keeps the stack's output map and
    parameters from the empty REVIEW_IN_PROGRESS stack, so the parent's Outputs are empty and the next
    identical deploy is not recognised as "no changes". It also diffs change sets on the template only,
    so a change set that only changes a parameter lists no resource change."""
    original_execute = cfn_models.CloudFormationBackend.execute_change_set

    def execute_change_set(self: cfn_models.CloudFormationBackend, change_set_name: str,
                           stack_name: str | None = None) -> None:
        change_set = self.describe_change_set(change_set_name)
        original_execute(self, change_set_name, stack_name)
        stack = self.stacks[change_set.stack_id]
        stack._parse_template()
        stack.description = stack.template_dict.get("Description")
        stack.parameters = change_set.parameters
        stack.output_map = stack._create_output_map()

    def diff(self: cfn_models.ChangeSet) -> list[cfn_models.Change]:
        resource_map = self.stack.resource_map
        by_action = resource_map.build_resource_diff(self.template_dict, self.parameters)
        changes = []
        for action, names in by_action.items():
            for name in names:
                source = resource_map._resource_json_map if action == "Remove" else self.template_dict["Resources"]
                changes.append(cfn_models.Change(action=action, logical_resource_id=name,
                                                 resource_type=source[name]["Type"]))
        return changes

    cfn_models.CloudFormationBackend.execute_change_set = execute_change_set
    cfn_models.ChangeSet.diff = diff


# ---------------------------------------------------------------------------------------------------------
# 3. Resource types moto does not model


# The property whose value AWS's Ref returns, for the types where the template sets it (else: a stable fake). The
# local task runner signs the processor in to the local Redis as the user REDIS_USERNAME names (Ref of the cache
# tier's user): https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-elasticache-user.html
REF_PROPERTY = {"AWS::ElastiCache::User": "UserId"}


class Placeholder(CloudFormationModel):
    """Stands in for a resource of a type moto cannot create; answers Ref and GetAtt with stable fakes (Ref with
    the property AWS returns where REF_PROPERTY names one)."""

    def __init__(self, name: str, resource_type: str, account_id: str, region: str):
        self.name = name
        self.resource_type = resource_type
        service = resource_type.split("::")[1].lower() if resource_type.count("::") == 2 else "unknown"
        self.arn = f"arn:aws:{service}:{region}:{account_id}:{name}"

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @staticmethod
    def cloudformation_type() -> str:
        return "Custom::MotoPlaceholder"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return True

    @classmethod
    def create_from_cloudformation_json(cls, resource_name: str, cloudformation_json: dict[str, Any],
                                        account_id: str, region_name: str, **kwargs: Any) -> Placeholder:
        resource_type = cloudformation_json["Type"]
        named = (cloudformation_json.get("Properties") or {}).get(REF_PROPERTY.get(resource_type, ""))
        return cls(named if isinstance(named, str) else resource_name, resource_type, account_id, region_name)

    @classmethod
    def update_from_cloudformation_json(cls, original_resource: Any, new_resource_name: str,
                                        cloudformation_json: dict[str, Any], account_id: str,
                                        region_name: str) -> Placeholder:
        return original_resource

    @classmethod
    def delete_from_cloudformation_json(cls, resource_name: str, cloudformation_json: dict[str, Any],
                                        account_id: str, region_name: str) -> None:
        return None

    def delete(self, account_id: str, region_name: str) -> None:
        return None

    @property
    def physical_resource_id(self) -> str:
        return self.name

    def get_cfn_attribute(self, attribute_name: str) -> str:
        return self.arn if attribute_name.endswith("Arn") else f"{self.name}-{attribute_name}"

    def is_created(self) -> bool:
        return True


def placeholders_for_unmodelled_types() -> None:
    """moto 5.2.5 silently skips resource types it has no CloudFormation model for (here: ElastiCache,
    Secrets Manager secrets, API Gateway stages, SNS subscriptions and topic policies, SQS queue policies,
    CloudWatch alarms, ...); a Ref or GetAtt on one then fails the stack (HTTP 500). A placeholder takes
    their place, so the stack completes and reports the resource like any other; a Ref of an ElastiCache user
    answers its UserId, as AWS's does."""
    original = cfn_parsing.resource_class_from_type

    def resource_class_from_type(resource_type: str) -> type[CloudFormationModel]:
        cls = original(resource_type)
        if cls is None and resource_type not in cfn_parsing.NULL_MODELS:
            return Placeholder
        return cls

    cfn_parsing.resource_class_from_type = resource_class_from_type


class CustomResourcePlaceholder(Placeholder):
    """Stands in for a custom resource (`Custom::*`): succeeds at once, and answers `GetAtt X` with its property
    X (the database bootstrap returns AppRole and AppSchema as it received them)."""

    def __init__(self, name: str, resource_type: str, account_id: str, region: str, properties: dict[str, Any]):
        super().__init__(name, resource_type, account_id, region)
        self.properties = properties

    @classmethod
    def create_from_cloudformation_json(cls, resource_name: str, cloudformation_json: dict[str, Any],
                                        account_id: str, region_name: str, **kwargs: Any) -> Placeholder:
        return cls(resource_name, cloudformation_json["Type"], account_id, region_name,
                   dict(cloudformation_json.get("Properties", {})))

    @classmethod
    def update_from_cloudformation_json(cls, original_resource: Any, new_resource_name: str,
                                        cloudformation_json: dict[str, Any], account_id: str,
                                        region_name: str) -> Placeholder:
        original_resource.properties = dict(cloudformation_json.get("Properties", {}))
        return original_resource

    def get_cfn_attribute(self, attribute_name: str) -> str:
        return str(self.properties.get(attribute_name, super().get_cfn_attribute(attribute_name)))


def custom_resources_succeed() -> None:
    """moto 5.2.5 runs a custom resource by invoking its function in Docker and waiting for the function's
    response, which the emulator (no Docker) never gets: the stack would wait forever. Locally a custom resource
    succeeds at once without running its function (the database bootstrap's own tests run it against a real
    PostgreSQL instead; there is no database in the emulator to bootstrap)."""
    original = cfn_parsing.resource_class_from_type

    def resource_class_from_type(resource_type: str) -> type[CloudFormationModel]:
        if resource_type.startswith("Custom::"):
            return CustomResourcePlaceholder
        return original(resource_type)

    cfn_parsing.resource_class_from_type = resource_class_from_type


# ---------------------------------------------------------------------------------------------------------
# 4. Resource events, failures and rollback


def resource_events() -> None:
    """moto 5.2.5 records only stack-level events: no CREATE_IN_PROGRESS / CREATE_COMPLETE / CREATE_FAILED
    per resource, so neither live progress nor a failure's root cause can be shown. Record them."""
    original_create = cfn_parsing.parse_and_create_resource
    original_update = cfn_parsing.parse_and_update_resource
    original_delete = cfn_parsing.ResourceMap._delete_resource

    def traced(kind: str, call: Callable[[], Any], stack: cfn_models.Stack | None, logical_id: str,
               resource_type: str) -> Any:
        try:
            resource = call()
        except Exception as e:
            physical = getattr(e, "physical_resource_id", "")
            _resource_event(stack, logical_id, resource_type, f"{kind}_IN_PROGRESS", physical)
            _resource_event(stack, logical_id, resource_type, f"{kind}_FAILED", physical, reason=_reason(e))
            raise
        if resource is not None or kind == "DELETE":
            physical = getattr(resource, "physical_resource_id", "") or ""
            _resource_event(stack, logical_id, resource_type, f"{kind}_IN_PROGRESS", physical)
            _resource_event(stack, logical_id, resource_type, f"{kind}_COMPLETE", physical)
        return resource

    def parse_and_create_resource(logical_id: str, resource_json: dict[str, Any], resources_map: Any,
                                  account_id: str, region_name: str) -> Any:
        return traced("CREATE", lambda: original_create(logical_id, resource_json, resources_map, account_id,
                                                        region_name),
                      _stack_of(resources_map, account_id, region_name), logical_id, resource_json["Type"])

    def parse_and_update_resource(logical_id: str, resource_json: dict[str, Any], resources_map: Any,
                                  account_id: str, region_name: str) -> Any:
        return traced("UPDATE", lambda: original_update(logical_id, resource_json, resources_map, account_id,
                                                        region_name),
                      _stack_of(resources_map, account_id, region_name), logical_id, resource_json["Type"])

    def _delete_resource(self: Any, parsed_resource: Any, resource_json: dict[str, Any]) -> None:
        stack = _stack_of(self, self._account_id, self._region_name)
        logical_id = getattr(parsed_resource, "logical_resource_id", "")
        traced("DELETE", lambda: original_delete(self, parsed_resource, resource_json), stack, logical_id,
               resource_json["Type"])

    cfn_parsing.parse_and_create_resource = parse_and_create_resource
    cfn_parsing.parse_and_update_resource = parse_and_update_resource
    cfn_parsing.ResourceMap._delete_resource = _delete_resource


def _reason(e: Exception) -> str:
    return getattr(e, "message", None) or str(e) or type(e).__name__


def rollback_on_failure() -> None:
    """moto 5.2.5 has no rollback: a resource that fails to create leaves the stack CREATE_IN_PROGRESS
    forever (and the execute-change-set call fails with HTTP 500). Do what CloudFormation does: delete what
    was created, end in ROLLBACK_COMPLETE (UPDATE_ROLLBACK_COMPLETE for an update, whose previous resources
    moto cannot restore), and let a failed nested stack free its name like a rolled-back nested stack.
    What cannot be deleted stays in the stack, which ends ROLLBACK_FAILED with their names in its last event,
    as on AWS."""
    original_execute = cfn_models.CloudFormationBackend.execute_change_set
    original_nested = cfn_models.Stack.create_from_cloudformation_json.__func__

    def roll_back(stack: cfn_models.Stack, reason: str, update: bool) -> list[str]:
        """Roll back; return the logical ids of the resources that could not be deleted."""
        prefix = "UPDATE_ROLLBACK" if update else "ROLLBACK"
        stack._add_stack_event(f"{prefix}_IN_PROGRESS", resource_status_reason=reason)
        left: list[str] = []
        if not update:
            resource_map = stack.resource_map
            try:
                resource_map.delete()
            except Exception as e:  # reported below, as AWS reports DELETE_FAILED
                left = sorted(k for k, v in resource_map._parsed_resources.items()
                              if k in resource_map._resource_json_map and v is not None and not isinstance(v, str))
                reason = f"The following resource(s) failed to delete: [{', '.join(left)}]. {_reason(e)}"
            # moto's resource map creates resources lazily when listed: keep only what is really left.
            resource_map._resource_json_map = {k: resource_map._resource_json_map[k] for k in left}
        status = f"{prefix}_FAILED" if left else f"{prefix}_COMPLETE"
        stack._add_stack_event(status, resource_status_reason=reason if left else None)
        stack.status = status
        return left

    def execute_change_set(self: cfn_models.CloudFormationBackend, change_set_name: str,
                           stack_name: str | None = None) -> None:
        change_set = self.describe_change_set(change_set_name)
        try:
            original_execute(self, change_set_name, stack_name)
        except Exception as e:
            stack = self.stacks[change_set.stack_id]
            change_set.execution_status = "EXECUTE_FAILED"
            roll_back(stack, f"The following resource(s) failed: {_reason(e)}",
                      update=change_set.change_set_type == "UPDATE")

    def create_from_cloudformation_json(cls: type, resource_name: str, cloudformation_json: dict[str, Any],
                                        account_id: str, region_name: str, **kwargs: Any) -> Any:
        backend = _backend(account_id, region_name)
        try:
            return original_nested(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        except Exception as e:
            for stack in list(backend.stacks.values()):
                if stack.name == resource_name:
                    stack._add_stack_event("CREATE_FAILED", resource_status_reason=_reason(e))
                    if not roll_back(stack, _reason(e), update=False):  # else it stays, ROLLBACK_FAILED
                        backend.stacks.pop(stack.stack_id)
                        backend.deleted_stacks[stack.stack_id] = stack
                    failure = cfn_models.ValidationError(
                        message=f"Embedded stack {stack.stack_id} was not successfully created: {_reason(e)}")
                    failure.physical_resource_id = stack.stack_id
                    raise failure from e
            raise

    cfn_models.CloudFormationBackend.execute_change_set = execute_change_set
    cfn_models.Stack.create_from_cloudformation_json = classmethod(create_from_cloudformation_json)


# ---------------------------------------------------------------------------------------------------------
# 5. KMS key policies given as JSON objects


def kms_key_properties() -> None:
    """moto 5.2.5 passes a CloudFormation KMS key's properties to the KMS API as they are: a KeyPolicy given
    as a JSON object (as CloudFormation allows) is stored as a dict and breaks later KMS calls on the key,
    and Tags in CloudFormation's Key/Value form fail with KeyError 'TagKey'. Convert both."""
    from moto.kms import models as kms_models

    original = kms_models.Key.create_from_cloudformation_json.__func__

    def create_from_cloudformation_json(cls: type, resource_name: str, cloudformation_json: dict[str, Any],
                                        account_id: str, region_name: str, **kwargs: Any) -> Any:
        properties = cloudformation_json.get("Properties", {})
        if isinstance(properties.get("KeyPolicy"), dict):
            properties = dict(properties, KeyPolicy=json.dumps(properties["KeyPolicy"]))
        if properties.get("Tags"):
            properties = dict(properties, Tags=[{"TagKey": t["Key"], "TagValue": t["Value"]}
                                                for t in properties["Tags"]])
        cloudformation_json = dict(cloudformation_json, Properties=properties)
        return original(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)

    kms_models.Key.create_from_cloudformation_json = classmethod(create_from_cloudformation_json)


# ---------------------------------------------------------------------------------------------------------
# 6. Ref to RDS groups


RDS_GROUPS = ("DBParameterGroup", "DBClusterParameterGroup")  # moto expects DBSubnetGroup as the object


def rds_group_refs() -> None:
    """moto 5.2.5: RDS parameter groups have no physical_resource_id, so `Ref` to one resolves to
    the model object itself and the DB instance using it fails ("'DBParameterGroup' object has no attribute
    'startswith'"). Ref returns the group's name, as on AWS."""
    from moto.rds import models as rds_models

    for name in RDS_GROUPS:
        cls = getattr(rds_models, name)
        if "physical_resource_id" not in vars(cls):
            cls.physical_resource_id = property(lambda self: self.name)


def rds_instance_getatt() -> None:
    """moto 5.2.5: the DB instance answers only Endpoint.Address and Endpoint.Port; `GetAtt Database.DbiResourceId`
    and `GetAtt Database.MasterUserSecret.SecretArn` (ManageMasterUserPassword, which its CloudFormation model
    ignores) fail the stack. Answer them: the resource ID it holds, and the ARN RDS gives its managed secret."""
    from moto.rds import models as rds_models

    original = rds_models.DBInstance.get_cfn_attribute
    original_has = rds_models.DBInstance.has_cfn_attr.__func__
    added = ("DbiResourceId", "MasterUserSecret.SecretArn")

    def has_cfn_attr(cls: type, attr: str) -> bool:
        return attr in added or original_has(cls, attr)

    def get_cfn_attribute(self: Any, attribute_name: str) -> Any:
        if attribute_name == "DbiResourceId":
            return self.dbi_resource_id
        if attribute_name == "MasterUserSecret.SecretArn":
            return (f"arn:aws:secretsmanager:{self.region}:{self.account_id}:secret:"
                    f"rds!db-{self.dbi_resource_id.lower().removeprefix('db-')}-AbCdEf")
        return original(self, attribute_name)

    rds_models.DBInstance.get_cfn_attribute = get_cfn_attribute
    rds_models.DBInstance.has_cfn_attr = classmethod(has_cfn_attr)


def efs_getatt() -> None:
    """moto 5.2.5: the EFS file system and access point models have no get_cfn_attribute, so
    `GetAtt FileSystem.Arn` or `GetAtt AccessPoint.Arn` fails the stack ("'AccessPoint' object has no
    attribute 'get_cfn_attribute'")."""
    from moto.efs import models as efs_models

    def access_point(self: Any, attribute_name: str) -> str:
        return {"Arn": self.access_point_arn, "AccessPointId": self.access_point_id}[attribute_name]

    def file_system(self: Any, attribute_name: str) -> str:
        return {"Arn": self.file_system_arn, "FileSystemId": self.file_system_id}[attribute_name]

    efs_models.AccessPoint.get_cfn_attribute = access_point
    efs_models.FileSystem.get_cfn_attribute = file_system


# ---------------------------------------------------------------------------------------------------------
# 7. Step Functions state machines as written


def _camel(value: Any) -> Any:
    """CloudFormation's PascalCase keys as the Step Functions API's camelCase ones, at every level."""
    if isinstance(value, dict):
        return {key[:1].lower() + key[1:]: _camel(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_camel(item) for item in value]
    return value


def _definition_string(properties: dict[str, Any]) -> str:
    """The ASL a state machine's CloudFormation properties describe: DefinitionString, or the Definition
    object as JSON, with DefinitionSubstitutions filled in."""
    from deploytools.moto_layer.stepfunctions import substitute

    definition = properties.get("Definition", properties.get("DefinitionString", ""))
    definition = substitute(definition, {k: str(v) for k, v in properties.get("DefinitionSubstitutions", {}).items()})
    return definition if isinstance(definition, str) else json.dumps(definition)


def state_machine_properties() -> None:
    """moto 5.2.5's CloudFormation state machine reads only DefinitionString (no Definition object, no
    DefinitionSubstitutions) and neither LoggingConfiguration nor TracingConfiguration: a state machine
    written with `Definition` is created with an empty definition, logging OFF and tracing disabled, on
    create and on update. Apply all of them, as CloudFormation does."""
    from moto.stepfunctions import models as sfn_models

    cls = sfn_models.StateMachine
    original_create = cls.create_from_cloudformation_json.__func__
    original_update = cls.update_from_cloudformation_json.__func__

    def applied(call: Callable[[dict[str, Any]], Any], cloudformation_json: dict[str, Any], account_id: str,
                region_name: str) -> Any:
        properties = cloudformation_json.get("Properties", {})
        state_machine = call(dict(cloudformation_json,
                                  Properties=dict(properties, DefinitionString=_definition_string(properties))))
        logging, tracing = properties.get("LoggingConfiguration"), properties.get("TracingConfiguration")
        return sfn_models.stepfunctions_backends[account_id][region_name].update_state_machine(
            state_machine.arn, logging_configuration=_camel(logging) if logging else {"level": "OFF"},
            tracing_configuration=_camel(tracing) if tracing else {"enabled": False})

    def create(cls: type, resource_name: str, cloudformation_json: dict[str, Any], account_id: str,
               region_name: str, **kwargs: Any) -> Any:
        return applied(lambda cfn_json: original_create(cls, resource_name, cfn_json, account_id, region_name,
                                                        **kwargs), cloudformation_json, account_id, region_name)

    def update(cls: type, original_resource: Any, new_resource_name: str, cloudformation_json: dict[str, Any],
               account_id: str, region_name: str) -> Any:
        return applied(lambda cfn_json: original_update(cls, original_resource, new_resource_name, cfn_json,
                                                        account_id, region_name),
                       cloudformation_json, account_id, region_name)

    cls.create_from_cloudformation_json = classmethod(create)
    cls.update_from_cloudformation_json = classmethod(update)


class _ApiStateMachineBackends:
    """moto's Step Functions backends as its API serves them: the executing (parser) ones when
    `execute_state_machine` is on, the plain ones otherwise."""

    def __init__(self, plain: Any):
        self.plain = plain

    def __getitem__(self, account_id: str) -> Any:
        from moto.core.config import default_user_config

        if default_user_config.get("stepfunctions", {}).get("execute_state_machine", False):
            from moto.stepfunctions.parser.models import stepfunctions_parser_backends

            return stepfunctions_parser_backends[account_id]
        return self.plain[account_id]


def state_machines_where_the_api_looks() -> None:
    """moto 5.2.5: with state machine execution enabled (`execute_state_machine`), the Step Functions API
    serves another set of backends than the one CloudFormation creates state machines in, so a state machine
    deployed by a stack is not found (StateMachineDoesNotExist) and cannot be executed. Create, update and
    delete them where the API looks."""
    from moto.stepfunctions import models as sfn_models

    if not isinstance(sfn_models.stepfunctions_backends, _ApiStateMachineBackends):
        sfn_models.stepfunctions_backends = _ApiStateMachineBackends(sfn_models.stepfunctions_backends)


# ---------------------------------------------------------------------------------------------------------
# 8. Generated DB instance identifiers


def rds_generated_identifier() -> None:
    """moto 5.2.5: a DB instance without DBInstanceIdentifier gets `<stack>-<logical id>-<suffix>`, which for a
    nested stack is longer than RDS's 63 characters, and the create fails ("DBInstanceIdentifier is not a valid
    identifier"). CloudFormation generates a valid one (lower case, at most 63 characters); so does this."""
    import re

    from moto.rds import models as rds_models

    original = rds_models.DBInstance.create_from_cloudformation_json.__func__

    def create_from_cloudformation_json(cls: type, resource_name: str, cloudformation_json: dict[str, Any],
                                        account_id: str, region_name: str, **kwargs: Any) -> Any:
        if "DBInstanceIdentifier" not in cloudformation_json.get("Properties", {}):
            name = re.sub("-+", "-", re.sub("[^a-z0-9-]", "-", resource_name.lower())).lstrip("-0123456789")
            resource_name = (name[:45].rstrip("-") + "-" + name[-17:].lstrip("-")).strip("-") \
                if len(name) > 63 else name.rstrip("-")
        return original(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)

    rds_models.DBInstance.create_from_cloudformation_json = classmethod(create_from_cloudformation_json)


# ---------------------------------------------------------------------------------------------------------
# 9. A bucket's versioning and EventBridge notifications


def s3_bucket_properties() -> None:
    """moto 5.2.5 creates a CloudFormation S3 bucket with its encryption and tags only: VersioningConfiguration
    and NotificationConfiguration's EventBridgeConfiguration are dropped, so the media bucket reports every
    version as `null` and sends no Object Created event. Apply both after moto's create, through its own S3
    API (moto then sends Object Created to EventBridge's rules as AWS does; a rule's Lambda target it still
    does not invoke: deploytools/smoke.py stands in for that)."""
    from moto.s3 import models as s3_models
    from moto.utilities.utils import get_partition

    original = s3_models.FakeBucket.create_from_cloudformation_json.__func__

    def create_from_cloudformation_json(cls: type, resource_name: str, cloudformation_json: dict[str, Any],
                                        account_id: str, region_name: str, **kwargs: Any) -> Any:
        bucket = original(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        properties = cloudformation_json.get("Properties", {})
        backend = s3_models.s3_backends[account_id][get_partition(region_name)]
        status = (properties.get("VersioningConfiguration") or {}).get("Status")
        if status:
            backend.put_bucket_versioning(bucket.name, status)
        event_bridge = (properties.get("NotificationConfiguration") or {}).get("EventBridgeConfiguration")
        if event_bridge and event_bridge.get("EventBridgeEnabled", True) in (True, "true"):
            backend.put_bucket_notification_configuration(bucket.name, {"EventBridgeConfiguration": {}})
        return bucket

    s3_models.FakeBucket.create_from_cloudformation_json = classmethod(create_from_cloudformation_json)


# ---------------------------------------------------------------------------------------------------------
# 10. EventBridge rules with a Lambda target


def rule_lambda_targets_skipped() -> None:
    """moto 5.2.5's EventBridge raises NotImplementedError for a rule's Lambda target; S3's event sending swallows
    the error, so every rule after that one misses the event (here: a source-arrived rule, which targets the
    scheduler Lambda, hid Object Created from any other rule). Lambda targets are skipped instead (moto runs
    Lambda only in docker); the rule's other targets and every other rule still get the event."""
    import copy

    from moto.events import models as events_models

    original = events_models.Rule.send_to_targets

    def send_to_targets(self: Any, original_event: Any, transform_input: bool = True) -> None:
        deliverable = [t for t in self.targets if ":lambda:" not in t["Arn"]]
        if len(deliverable) == len(self.targets):
            return original(self, original_event, transform_input=transform_input)
        without_lambda = copy.copy(self)  # shallow: the stored rule keeps its targets
        without_lambda.targets = deliverable
        return original(without_lambda, original_event, transform_input=transform_input)

    events_models.Rule.send_to_targets = send_to_targets


WORKAROUNDS: tuple[Callable[[], None], ...] = (
    nested_stack_output_getatt,
    change_set_execution_state,
    placeholders_for_unmodelled_types,
    resource_events,
    rollback_on_failure,
    kms_key_properties,
    rds_group_refs,
    rds_instance_getatt,
    efs_getatt,
    state_machine_properties,
    state_machines_where_the_api_looks,
    rds_generated_identifier,
    custom_resources_succeed,
    s3_bucket_properties,
    rule_lambda_targets_skipped,
)

_applied = False


def apply_all() -> None:
    """Apply every workaround once; refuse another moto than the one they were written and tested for."""
    global _applied
    if _applied:
        return
    require_moto_version()
    for workaround in WORKAROUNDS:
        workaround()
    _applied = True
