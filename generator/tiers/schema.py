"""schema: the database bootstrap. A function in the VPC, run by CloudFormation as a custom resource, that
creates the processor's database role and schema and applies the versioned SQL migrations as the master.

The function's code is generator/functions/db_bootstrap/ (handler, migrations, pinned requirements). Its template
names a local zip, `functions/db_bootstrap.zip` beside the template: deploy.sh builds it reproducibly
(deploytools/package_function.py) and `aws cloudformation package` uploads it. The custom resource carries a
hash of the migrations, so adding one updates the resource and the function applies it on the next deploy.
Only this function's role may read the master's secret.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import ClassVar

from awacs import secretsmanager as secretsmanager_actions
from awacs.aws import Allow, Statement
from troposphere import GetAtt, Ref, Template
from troposphere.awslambda import Code, Function
from troposphere.cloudformation import CustomResource

from generator import blocks, contracts, names
from generator.alarms import GT, AlarmSpec
from generator.config import EnvConfig

CONSUMES = (contracts.PRIVATE_SUBNET_IDS, contracts.DATABASE_BOOTSTRAP_SECURITY_GROUP_ID, contracts.DATA_KEY_ARN,
            contracts.DATABASE_ENDPOINT_ADDRESS, contracts.DATABASE_ENDPOINT_PORT,
            contracts.DATABASE_MASTER_SECRET_ARN)
PRODUCES = (contracts.DATABASE_APP_USERNAME, contracts.DATABASE_BOOTSTRAP_FUNCTION_NAME)

# Failure modes (generator/alarms.py): the operations tier builds them, the runbook shows them.
BOOTSTRAP_FUNCTION = (("FunctionName", contracts.DATABASE_BOOTSTRAP_FUNCTION_NAME),)
ALARMS = (
    AlarmSpec(
        "BootstrapErrorsAlarm", "db-bootstrap-errors", "AWS/Lambda", "Errors", BOOTSTRAP_FUNCTION, "Sum", GT, 0,
        "notBreaching",
        "The database bootstrap raised (a timeout, or a failure before it could answer CloudFormation): the deploy "
        "that ran it failed or waited for its service timeout",
        "The function's log group (/aws/lambda/<function>) and the schema stack's events",
        "Fix the migration or the database's reachability (bootstrap security group, master secret) and deploy again"),
    AlarmSpec(
        "BootstrapThrottlesAlarm", "db-bootstrap-throttles", "AWS/Lambda", "Throttles", BOOTSTRAP_FUNCTION, "Sum",
        GT, 0, "notBreaching",
        "The bootstrap was refused for lack of Lambda concurrency in the account: its deploy waits or fails",
        "The account's ConcurrentExecutions against its Lambda concurrency quota; other functions' reservations",
        "Deploy again once the account has free concurrency, or raise the account's Lambda concurrency quota"),
)

FUNCTION_SOURCE = Path(__file__).resolve().parent.parent / "functions" / "db_bootstrap"
MIGRATIONS = FUNCTION_SOURCE / "migrations"
# Where the template expects the built package, relative to the template (deploy.sh puts it there).
PACKAGE_PATH = "functions/db_bootstrap.zip"
HANDLER = "handler.handler"
RUNTIME = "python3.14"
FUNCTION_TIMEOUT_SECONDS = 300
# CloudFormation fails the resource if no response arrives in this time (instead of the default hour).
SERVICE_TIMEOUT_SECONDS = 900


class DatabaseBootstrap(CustomResource):
    resource_type = "Custom::DatabaseBootstrap"
    props: ClassVar[dict] = {"ServiceToken": (str, True), "ServiceTimeout": (int, False)}


def migrations_hash() -> str:
    """sha256 over the migration files' names and contents, in order: changes whenever a migration is added."""
    digest = hashlib.sha256()
    for path in sorted(MIGRATIONS.glob("*.sql")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def function_name(cfg: EnvConfig) -> str:
    return names.physical("db-bootstrap", cfg.name)


def build(cfg: EnvConfig) -> Template:
    t = blocks.new_template(cfg, "Video processing database schema: the bootstrap function creating the "
                                 "processor's role and applying migrations")
    p = blocks.parameters(t, CONSUMES)
    log_group_name = names.lambda_log_group(function_name(cfg))
    key = blocks.kms_key(t, cfg, "BootstrapLogsKey", "Encrypts the database bootstrap function's log group",
                         names.env_prefixed(cfg.name, "db-bootstrap-logs"),
                         [blocks.logs_key_statement([log_group_name])])
    logs = blocks.encrypted_log_group(t, cfg, "BootstrapLogGroup", log_group_name, GetAtt(key, "Arn"))
    role = blocks.function_role(t, cfg, "BootstrapFunctionRole",
                                "The database bootstrap reads the master secret and applies migrations",
                                "ReadMasterSecretAndApplyMigrations", function_statements(cfg, p))
    function = t.add_resource(Function(
        "BootstrapFunction",
        FunctionName=function_name(cfg),
        Description=f"Creates the processor's database role and schema, applies migrations ({cfg.name})",
        Runtime=RUNTIME,
        Architectures=["arm64"],
        Handler=HANDLER,
        Code=Code(ZipFile="placeholder"),  # replaced below by the local package path
        Role=GetAtt(role, "Arn"),
        MemorySize=256,
        Timeout=FUNCTION_TIMEOUT_SECONDS,
        **blocks.vpc_function_properties(cfg, logs, p[contracts.PRIVATE_SUBNET_IDS],
                                         p[contracts.DATABASE_BOOTSTRAP_SECURITY_GROUP_ID]),
        Metadata=blocks.checkov_skip(
            ("CKV_AWS_116", "invoked only by CloudFormation, which fails the stack on a missing response; a queued "
                            "event could not be answered later"),
            ("CKV_AWS_115", "runs once per deploy, serialised by the migrations' advisory lock; a reservation would "
                            "need more than a new account's Lambda concurrency quota (issue 11, defect 3)"),
            # A local Code path is the point: `aws cloudformation package` uploads it.
            metadata={"cfn-lint": {"config": {"ignore_checks": ["W3002"]}}},
        ),
    ))
    # `aws cloudformation package` uploads a local path given as Code and replaces it with the S3 location.
    function.properties["Code"] = PACKAGE_PATH
    bootstrap = t.add_resource(DatabaseBootstrap(
        "DatabaseBootstrap",
        ServiceToken=GetAtt(function, "Arn"),
        ServiceTimeout=SERVICE_TIMEOUT_SECONDS,
        MasterSecretArn=p[contracts.DATABASE_MASTER_SECRET_ARN],
        DatabaseHost=p[contracts.DATABASE_ENDPOINT_ADDRESS],
        DatabasePort=p[contracts.DATABASE_ENDPOINT_PORT],
        DatabaseName=contracts.DATABASE_NAME,
        AppRole=contracts.DATABASE_APP_ROLE,
        AppSchema=contracts.DATABASE_APP_SCHEMA,
        MigrationsHash=migrations_hash(),
    ))
    blocks.output(t, contracts.DATABASE_APP_USERNAME, GetAtt(bootstrap, "AppRole"))
    blocks.output(t, contracts.DATABASE_BOOTSTRAP_FUNCTION_NAME, Ref(function))
    return t


def function_statements(cfg: EnvConfig, p: dict[contracts.Contract, Ref]) -> list[Statement]:
    """The master secret (the only reader), its key through Secrets Manager, own logs, traces and interfaces."""
    return [
        Statement(Sid="ReadMasterSecret", Effect=Allow, Action=[secretsmanager_actions.GetSecretValue],
                  Resource=[p[contracts.DATABASE_MASTER_SECRET_ARN]]),
        blocks.decrypt_secrets_statement("DecryptMasterSecret", [p[contracts.DATA_KEY_ARN]]),
        *blocks.vpc_function_statements(names.lambda_log_group(function_name(cfg)),
                                        contracts.DATABASE_BOOTSTRAP_SECURITY_GROUP_ID.name),
    ]
