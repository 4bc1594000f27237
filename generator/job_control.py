"""What the jobs and api tiers share about the job-control functions: the package both run, the function's
common shape, and the grants both need on the job table and the state machine.

A tier meets another only through contracts (contracts.py) and shared helpers like this one: the api tier builds
its function and grants from here, never from the jobs tier's module.
"""

from __future__ import annotations

from pathlib import Path

from awacs import dynamodb as dynamodb_actions
from awacs import kms as kms_actions
from awacs import states as states_actions
from awacs.aws import Allow, Condition, Statement, StringEquals
from troposphere import AWS_REGION, Sub
from troposphere.awslambda import Code, Environment, Function

from generator.config import EnvConfig
from generator.functions.video_jobs import contract

FUNCTION_SOURCE = Path(contract.__file__).resolve().parent
# Where the templates expect the built package, relative to the template (deploy.sh puts it there): the API's
# function and the scheduler run the same package.
PACKAGE_PATH = "functions/video_jobs.zip"
RUNTIME = "python3.14"  # the newest Python runtime, not deprecated before 2029
# What a job-control function may do on the table: TransactWriteItems is authorised per contained action
# (ConditionCheck, Put, Update), so it is not an action of its own here. No Scan, no DeleteItem.
TABLE_ACTIONS = (dynamodb_actions.ConditionCheckItem, dynamodb_actions.GetItem, dynamodb_actions.PutItem,
                 dynamodb_actions.Query, dynamodb_actions.UpdateItem)
# What DynamoDB does with the table's key on a caller's behalf (encrypt, decrypt, re-encrypt the table keys).
TABLE_KEY_ACTIONS = (kms_actions.Decrypt, kms_actions.DescribeKey, kms_actions.Encrypt,
                     kms_actions.Action("GenerateDataKey*"), kms_actions.Action("ReEncrypt*"))


def dynamodb_via() -> Sub:
    return Sub(f"dynamodb.${{{AWS_REGION}}}.amazonaws.com")


def table_statements(table_arn, key_arn) -> list[Statement]:
    """Read and write job records (table and its indexes) and let DynamoDB use the table's key for the role.

    Shared by the scheduler and the API function: both admit jobs (a conditional transaction on the slot counter).
    """
    return [
        Statement(Sid="ReadAndWriteJobs", Effect=Allow, Action=list(TABLE_ACTIONS),
                  Resource=[table_arn, Sub("${Table}/index/*", Table=table_arn)]),
        Statement(Sid="UseJobsKeyThroughDynamoDB", Effect=Allow, Action=list(TABLE_KEY_ACTIONS),
                  Resource=[key_arn], Condition=Condition(StringEquals("kms:ViaService", dynamodb_via()))),
    ]


def start_statement(state_machine_arn) -> Statement:
    """Admitting a job starts an execution of this one state machine."""
    return Statement(Sid="StartProcessing", Effect=Allow, Action=[states_actions.StartExecution],
                     Resource=[state_machine_arn])


def job_control_function(title: str, cfg: EnvConfig, table_name, state_machine_arn, *, environment: dict,
                         **properties) -> Function:
    """A function running the job-control package (the API's or the scheduler): Python on arm64, the package's
    code, and the environment both handlers read (the table, the state machine, the cap) plus `environment`."""
    function = Function(
        title,
        Runtime=RUNTIME,
        Architectures=["arm64"],
        Code=Code(ZipFile="placeholder"),  # replaced below by the package's local path
        MemorySize=256,
        Environment=Environment(Variables={
            contract.ENV_TABLE: table_name,
            contract.ENV_STATE_MACHINE_ARN: state_machine_arn,
            contract.ENV_MAX_CONCURRENT: str(cfg.max_concurrent_videos),
            **environment,
        }),
        **properties,
    )
    # `aws cloudformation package` uploads a local path given as Code and replaces it with the S3 location.
    function.properties["Code"] = PACKAGE_PATH
    return function
