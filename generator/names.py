"""Physical names: every name and prefix that names something in AWS lives here, nowhere else.

Physical names appear only where they are a contract: the sketch's `<project>-<kind>-<env>` resources that
operators and alarms know, and names AWS derives log groups from (cluster, function). Key
aliases, Name tags and our own log groups use `<project>-<env>-<purpose>` and `/<project>/<env>/<what>`.
What deploy.sh creates outside the templates (the parent stack, the artifact bucket) and the smoke's queues use
the deployment prefix. deploy.sh asks this module for them: `python -m generator.names stack --env dev`.
"""

from __future__ import annotations

PROJECT = "video-processing"
# The prefix of what deploy.sh and its tools name outside the templates: the parent stack (whose name starts every
# nested stack's), the artifact bucket, the smoke's queues.
DEPLOYMENT = "video-pipeline"
PREFIXES = (PROJECT, DEPLOYMENT)

# The processor's awslogs stream prefix: its streams read `<project>/<container>/<task id>`.
LOG_STREAM_PREFIX = PROJECT


def physical(kind: str, env: str) -> str:
    """The sketch's `<project>-<kind>-<env>` names (topics, cluster, state machine, API, function)."""
    return f"{PROJECT}-{kind}-{env}"


def cluster(env: str) -> str:
    return physical("cluster", env)


def state_machine(env: str) -> str:
    return physical("workflow", env)


def api(env: str) -> str:
    """The REST API and the function behind it share this name."""
    return physical("api", env)


def topic(kind: str, env: str) -> str:
    return physical(kind, env)


def env_prefixed(env: str, *parts: str) -> str:
    """`<project>-<env>[-<part>...]`: Name tags and key aliases (`alias/` is added by blocks.kms_key)."""
    return "-".join((PROJECT, env, *parts))


def _own_log_group(env: str, what: str) -> str:
    """Log groups whose name no AWS service dictates: `/<project>/<env>/<what>`."""
    return f"/{PROJECT}/{env}/{what}"


def processor_log_group(env: str) -> str:
    """The processing container's log group: created by workflow, written through compute's execution role."""
    return _own_log_group(env, "processor")


def flow_log_group(env: str) -> str:
    return _own_log_group(env, "vpc-flow-logs")


def api_access_log_group(env: str) -> str:
    return _own_log_group(env, "api-access")


def state_machine_log_group(env: str) -> str:
    """Under /aws/vendedlogs/ so CloudWatch Logs resource policies stay small at scale."""
    return f"/aws/vendedlogs/states/{PROJECT}-{env}"


def cache_slow_log_group(env: str) -> str:
    """Under /aws/vendedlogs/: ElastiCache delivers through CloudWatch Logs' vended log delivery."""
    return f"/aws/vendedlogs/elasticache/{PROJECT}-{env}/slow-log"


def container_insights_log_group(env: str) -> str:
    """The group Container Insights writes to, named by ECS after the cluster."""
    return f"/aws/ecs/containerinsights/{cluster(env)}/performance"


def lambda_log_group(function_name: str) -> str:
    """Lambda's default group for a function (each function's LoggingConfig names it explicitly)."""
    return f"/aws/lambda/{function_name}"


def function_log_group(env: str) -> str:
    """The API function's group."""
    return lambda_log_group(api(env))


def rds_log_group(instance_identifier: str, log_type: str) -> str:
    """The group RDS exports a database log to (one per EnableCloudwatchLogsExports value), named by RDS after the
    instance's identifier: https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_LogAccess.Procedural.UploadtoCloudWatch.html"""
    return f"/aws/rds/instance/{instance_identifier}/{log_type}"


def scheduler(env: str) -> str:
    """The job-control scheduler function (its log group is named after it)."""
    return physical("scheduler", env)


def alarm(env: str, what: str) -> str:
    """`<project>-<env>-<what>`: alarm names, so the ops topic admits exactly this environment's alarms."""
    return env_prefixed(env, what)


def execution_end_rule(env: str) -> str:
    """The jobs tier's EventBridge rule handing ended executions to the scheduler, named so that the dead-letter
    queue admits exactly it (aws:SourceArn) without waiting for its generated name."""
    return env_prefixed(env, "execution-ended")


def source_arrived_rule(env: str) -> str:
    """The jobs tier's EventBridge rule handing uploaded sources to the scheduler, named for the same reason."""
    return env_prefixed(env, "source-arrived")


def alarms_pattern(env: str) -> str:
    """Every alarm of the environment, as the ops topic policy's aws:SourceArn pattern names them."""
    return env_prefixed(env, "*")


def dashboard(env: str) -> str:
    return env_prefixed(env)


def api_gateway_logs_role(region: str) -> str:
    """The account bootstrap's API Gateway CloudWatch role, one per region (its policy names the region)."""
    return f"{PROJECT}-apigateway-logs-{region}"


def parent_stack(env: str) -> str:
    """deploy.sh's default parent stack name, `<deployment>-<env>` (its nested stacks' names start with it)."""
    return f"{DEPLOYMENT}-{env}"


def artifact_bucket(account: str, region: str) -> str:
    """deploy.sh's default artifact bucket, one per account and region (S3 bucket names are global)."""
    return f"{DEPLOYMENT}-artifacts-{account}-{region}"


def processor_repository() -> str:
    """The processor image's ECR repository, one per account and region (the bootstrap's): every environment runs
    images from it, pinned by digest, so the image a deploy to dev tested is the very one prod then runs."""
    return f"{PROJECT}/processor"


def smoke_queue(suffix: str) -> str:
    """A queue the smoke subscribes to the topics for one run (`suffix` keeps runs apart)."""
    return f"{DEPLOYMENT}-smoke-{suffix}"


def main(argv: list[str] | None = None) -> int:
    """`python -m generator.names stack --env E` and `artifact-bucket --account A --region R`, for deploy.sh."""
    import argparse  # here: generation imports this module and needs no argument parser

    p = argparse.ArgumentParser(prog="python -m generator.names", description="Print a name deploy.sh uses.")
    which = p.add_subparsers(dest="what", required=True)
    which.add_parser("stack", help="the parent stack's default name").add_argument("--env", required=True)
    bucket = which.add_parser("artifact-bucket", help="the artifact bucket's default name")
    bucket.add_argument("--account", required=True)
    bucket.add_argument("--region", required=True)
    args = p.parse_args(argv)
    print(parent_stack(args.env) if args.what == "stack" else artifact_bucket(args.account, args.region))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
