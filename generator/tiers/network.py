"""network: VPC, three subnet kinds per AZ, NAT, routes, flow logs, S3 and DynamoDB endpoints, security groups.

Subnet kinds: public (NAT gateways only), private (tasks and the job-control functions, egress through NAT),
data (database, cache, file system; no route to the internet at all).
"""

from __future__ import annotations

import ipaddress

from awacs import logs as logs_actions
from awacs.aws import Action, Allow, Condition, PolicyDocument, Principal, Statement, StringEquals
from troposphere import AWS_ACCOUNT_ID, AWS_REGION, GetAtt, GetAZs, Join, Ref, Select, Split, Sub, Template
from troposphere.ec2 import (
    EIP,
    VPC,
    FlowLog,
    InternetGateway,
    NatGateway,
    Route,
    RouteTable,
    SecurityGroup,
    SecurityGroupEgress,
    SecurityGroupRule,
    Subnet,
    SubnetRouteTableAssociation,
    VPCEndpoint,
    VPCGatewayAttachment,
)
from troposphere.iam import Role

from generator import blocks, contracts, job_control, names
from generator.config import EnvConfig

CONSUMES = ()
PRODUCES = (
    contracts.VPC_ID, contracts.VPC_CIDR, contracts.PUBLIC_SUBNET_IDS, contracts.PRIVATE_SUBNET_IDS,
    contracts.DATA_SUBNET_IDS, contracts.TASK_SECURITY_GROUP_ID, contracts.API_FUNCTION_SECURITY_GROUP_ID,
    contracts.SCHEDULER_FUNCTION_SECURITY_GROUP_ID, contracts.DATABASE_SECURITY_GROUP_ID,
    contracts.CACHE_SECURITY_GROUP_ID, contracts.FILE_SYSTEM_SECURITY_GROUP_ID,
    contracts.DATABASE_BOOTSTRAP_SECURITY_GROUP_ID,
)

SUBNET_PREFIX_LENGTH = 20
# Offsets (in /20 blocks) of each kind inside the VPC's /16: room for up to four AZs per kind.
SUBNET_KINDS = (("Public", 0), ("Private", 4), ("Data", 8))

POSTGRES_PORT, REDIS_PORT, NFS_PORT, HTTPS_PORT = 5432, 6379, 2049, 443

# CloudFormation's way to say "no egress at all": one rule that matches nothing.
NO_EGRESS = SecurityGroupRule(CidrIp="255.255.255.255/32", IpProtocol="icmp", FromPort=252, ToPort=86,
                              Description="Disallow all egress")


def subnet_cidrs(cfg: EnvConfig, offset: int) -> list[str]:
    blocks_20 = list(ipaddress.ip_network(cfg.vpc_cidr).subnets(new_prefix=SUBNET_PREFIX_LENGTH))
    return [str(blocks_20[offset + i]) for i in range(cfg.az_count)]


def build(cfg: EnvConfig) -> Template:
    t = blocks.new_template(cfg, "Video processing network: VPC, subnets, NAT, flow logs, security groups")
    vpc = t.add_resource(VPC(
        "Vpc", CidrBlock=cfg.vpc_cidr, EnableDnsHostnames=True, EnableDnsSupport=True,
        Tags=blocks.tags(cfg, Name=names.env_prefixed(cfg.name)),
    ))
    igw = t.add_resource(InternetGateway("InternetGateway", Tags=blocks.tags(cfg)))
    attachment = t.add_resource(VPCGatewayAttachment("InternetGatewayAttachment", VpcId=Ref(vpc),
                                                     InternetGatewayId=Ref(igw)))

    subnets: dict[str, list[Subnet]] = {}
    for kind, offset in SUBNET_KINDS:
        subnets[kind] = [
            t.add_resource(Subnet(
                f"{kind}Subnet{az + 1}",
                VpcId=Ref(vpc),
                CidrBlock=cidr,
                AvailabilityZone=Select(az, GetAZs("")),
                MapPublicIpOnLaunch=False,
                Tags=blocks.tags(cfg, Name=names.env_prefixed(cfg.name, kind.lower(), str(az + 1))),
            ))
            for az, cidr in enumerate(subnet_cidrs(cfg, offset))
        ]

    public_rt = t.add_resource(RouteTable("PublicRouteTable", VpcId=Ref(vpc), Tags=blocks.tags(cfg)))
    t.add_resource(Route("PublicDefaultRoute", RouteTableId=Ref(public_rt), DestinationCidrBlock="0.0.0.0/0",
                         GatewayId=Ref(igw), DependsOn=attachment.title))
    _associate(t, subnets["Public"], lambda az: public_rt)

    nats = []
    for n in range(1, cfg.nat_gateway_count + 1):
        eip = t.add_resource(EIP(f"NatEip{n}", Domain="vpc", Tags=blocks.tags(cfg), DependsOn=attachment.title))
        nats.append(t.add_resource(NatGateway(
            f"NatGateway{n}", AllocationId=GetAtt(eip, "AllocationId"), SubnetId=Ref(subnets["Public"][n - 1]),
            Tags=blocks.tags(cfg),
        )))

    # One private route table per AZ, so that prod's per-AZ NAT keeps an AZ failure contained.
    private_rts = []
    for az in range(cfg.az_count):
        rt = t.add_resource(RouteTable(f"PrivateRouteTable{az + 1}", VpcId=Ref(vpc), Tags=blocks.tags(cfg)))
        t.add_resource(Route(f"PrivateDefaultRoute{az + 1}", RouteTableId=Ref(rt), DestinationCidrBlock="0.0.0.0/0",
                             NatGatewayId=Ref(nats[az % len(nats)])))
        private_rts.append(rt)
    _associate(t, subnets["Private"], lambda az: private_rts[az])

    data_rt = t.add_resource(RouteTable("DataRouteTable", VpcId=Ref(vpc), Tags=blocks.tags(cfg)))
    _associate(t, subnets["Data"], lambda az: data_rt)

    t.add_resource(VPCEndpoint(
        "S3GatewayEndpoint", VpcId=Ref(vpc), VpcEndpointType="Gateway",
        ServiceName=Sub("com.amazonaws.${AWS::Region}.s3"),
        RouteTableIds=sorted([Ref(rt) for rt in [*private_rts, data_rt]], key=lambda r: r.data["Ref"]),
        PolicyDocument=s3_endpoint_policy(),
    ))
    # Job control's functions (private subnets) read and write the job table without the NAT. Gateway endpoints
    # cost nothing, so every environment has one.
    t.add_resource(VPCEndpoint(
        "DynamoDBGatewayEndpoint", VpcId=Ref(vpc), VpcEndpointType="Gateway",
        ServiceName=Sub("com.amazonaws.${AWS::Region}.dynamodb"),
        RouteTableIds=sorted([Ref(rt) for rt in private_rts], key=lambda r: r.data["Ref"]),
        PolicyDocument=dynamodb_endpoint_policy(),
    ))

    _flow_logs(t, cfg, vpc)
    groups = _security_groups(t, cfg, vpc)
    if cfg.vpc_endpoints:
        _interface_endpoints(t, cfg, vpc, subnets["Private"], groups)

    blocks.output(t, contracts.VPC_ID, Ref(vpc))
    blocks.output(t, contracts.VPC_CIDR, GetAtt(vpc, "CidrBlock"))
    blocks.output(t, contracts.PUBLIC_SUBNET_IDS, [Ref(s) for s in subnets["Public"]])
    blocks.output(t, contracts.PRIVATE_SUBNET_IDS, [Ref(s) for s in subnets["Private"]])
    blocks.output(t, contracts.DATA_SUBNET_IDS, [Ref(s) for s in subnets["Data"]])
    for contract, group in groups.items():
        blocks.output(t, contract, GetAtt(group, "GroupId"))
    return t


def _associate(t: Template, subnets: list[Subnet], route_table_for) -> None:
    for az, subnet in enumerate(subnets):
        t.add_resource(SubnetRouteTableAssociation(
            f"{subnet.title}RouteTableAssociation", SubnetId=Ref(subnet), RouteTableId=Ref(route_table_for(az)),
        ))


def _flow_logs(t: Template, cfg: EnvConfig, vpc: VPC) -> None:
    key = blocks.kms_key(t, cfg, "FlowLogsKey", "Encrypts the VPC flow log group",
                         names.env_prefixed(cfg.name, "flow-logs"),
                         [blocks.logs_key_statement([names.flow_log_group(cfg.name)])])
    group = blocks.encrypted_log_group(t, cfg, "FlowLogGroup", names.flow_log_group(cfg.name), GetAtt(key, "Arn"))
    role = t.add_resource(Role(
        "FlowLogsRole",
        AssumeRolePolicyDocument=blocks.service_trust("vpc-flow-logs"),
        Policies=[blocks.inline_policy("DeliverToFlowLogGroup", Statement(
            Effect=Allow,
            Action=[logs_actions.CreateLogStream, logs_actions.DescribeLogStreams, logs_actions.PutLogEvents],
            Resource=[GetAtt(group, "Arn"), Sub("${Group}:log-stream:*", Group=GetAtt(group, "Arn"))],
        ))],
        Tags=blocks.tags(cfg),
    ))
    t.add_resource(FlowLog(
        "VpcFlowLog", ResourceId=Ref(vpc), ResourceType="VPC", TrafficType="ALL",
        LogDestinationType="cloud-watch-logs", LogGroupName=Ref(group), DeliverLogsPermissionArn=GetAtt(role, "Arn"),
        MaxAggregationInterval=60, Tags=blocks.tags(cfg),
    ))


def _security_groups(t: Template, cfg: EnvConfig, vpc: VPC) -> dict:
    def group(title: str, description: str, ingress: list, egress: list) -> SecurityGroup:
        return t.add_resource(SecurityGroup(
            title, GroupDescription=f"{description} ({cfg.name})", VpcId=Ref(vpc),
            SecurityGroupIngress=ingress, SecurityGroupEgress=egress, Tags=blocks.tags(cfg),
        ))

    https_out = SecurityGroupRule(CidrIp="0.0.0.0/0", IpProtocol="tcp", FromPort=HTTPS_PORT, ToPort=HTTPS_PORT,
                                  Description="HTTPS to AWS APIs and the image registry")
    tasks = group("TaskSecurityGroup", "Video processing tasks", [], [https_out])
    api = group("ApiFunctionSecurityGroup", "Video API function", [], [https_out])
    # The scheduler calls AWS APIs only (DynamoDB, S3, Step Functions, SNS): a group of its own, so that the API
    # function's reach to the cache below is not the scheduler's too.
    scheduler = group("SchedulerFunctionSecurityGroup", "Job-control scheduler function", [], [https_out])
    # The schema tier's function: the master secret and its response to CloudFormation over HTTPS, the database.
    bootstrap = group("DatabaseBootstrapSecurityGroup", "Database bootstrap function", [], [https_out])

    def from_tasks(port: int, what: str) -> list[SecurityGroupRule]:
        return [SecurityGroupRule(SourceSecurityGroupId=GetAtt(tasks, "GroupId"), IpProtocol="tcp",
                                  FromPort=port, ToPort=port, Description=f"{what} from processing tasks")]

    database = group("DatabaseSecurityGroup", "PostgreSQL database", [
        *from_tasks(POSTGRES_PORT, "PostgreSQL"),
        SecurityGroupRule(SourceSecurityGroupId=GetAtt(bootstrap, "GroupId"), IpProtocol="tcp",
                          FromPort=POSTGRES_PORT, ToPort=POSTGRES_PORT,
                          Description="PostgreSQL from the database bootstrap function"),
    ], [NO_EGRESS])
    # The API function reads progress (GET /videos/{videoId}); nothing else of job control reaches the cache.
    cache = group("CacheSecurityGroup", "Redis cache", [
        *from_tasks(REDIS_PORT, "Redis"),
        SecurityGroupRule(SourceSecurityGroupId=GetAtt(api, "GroupId"), IpProtocol="tcp", FromPort=REDIS_PORT,
                          ToPort=REDIS_PORT, Description="Redis from the API function"),
    ], [NO_EGRESS])
    file_system = group("FileSystemSecurityGroup", "EFS mount targets", from_tasks(NFS_PORT, "NFS"), [NO_EGRESS])

    # Task egress to the data groups as separate rules: inline references both ways would be a cycle.
    for target, port, what in ((database, POSTGRES_PORT, "Database"), (cache, REDIS_PORT, "Cache"),
                               (file_system, NFS_PORT, "FileSystem")):
        t.add_resource(SecurityGroupEgress(
            f"TaskTo{what}Egress", GroupId=GetAtt(tasks, "GroupId"), IpProtocol="tcp", FromPort=port, ToPort=port,
            DestinationSecurityGroupId=GetAtt(target, "GroupId"), Description=f"Processing tasks to {what.lower()}",
        ))
    t.add_resource(SecurityGroupEgress(
        "ApiFunctionToCacheEgress", GroupId=GetAtt(api, "GroupId"), IpProtocol="tcp", FromPort=REDIS_PORT,
        ToPort=REDIS_PORT, DestinationSecurityGroupId=GetAtt(cache, "GroupId"), Description="API function to cache",
    ))
    t.add_resource(SecurityGroupEgress(
        "DatabaseBootstrapToDatabaseEgress", GroupId=GetAtt(bootstrap, "GroupId"), IpProtocol="tcp",
        FromPort=POSTGRES_PORT, ToPort=POSTGRES_PORT, DestinationSecurityGroupId=GetAtt(database, "GroupId"),
        Description="Database bootstrap function to database",
    ))
    return {
        contracts.TASK_SECURITY_GROUP_ID: tasks,
        contracts.API_FUNCTION_SECURITY_GROUP_ID: api,
        contracts.SCHEDULER_FUNCTION_SECURITY_GROUP_ID: scheduler,
        contracts.DATABASE_SECURITY_GROUP_ID: database,
        contracts.CACHE_SECURITY_GROUP_ID: cache,
        contracts.FILE_SYSTEM_SECURITY_GROUP_ID: file_system,
        contracts.DATABASE_BOOTSTRAP_SECURITY_GROUP_ID: bootstrap,
    }


# What the private subnets' workloads call, per interface endpoint (the endpoint policy allows these actions to
# this account's principals only): ECS pulling the image and injecting the Redis token, the processor's and the
# functions' logs, the bootstrap reading the master secret, the job-control functions (API and scheduler, each
# with its own group) starting and following executions, SDK identity. DynamoDB has a gateway
# endpoint in every environment (free); SNS has its own endpoint below (SNS_ENDPOINT), scoped to topics.
INTERFACE_ENDPOINTS = {
    "ecr.api": ("ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetAuthorizationToken",
                "ecr:GetDownloadUrlForLayer"),
    "ecr.dkr": ("ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetAuthorizationToken",
                "ecr:GetDownloadUrlForLayer"),
    "logs": ("logs:CreateLogStream", "logs:PutLogEvents"),
    "secretsmanager": ("secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"),
    "states": ("states:DescribeExecution", "states:StartExecution"),
    "sts": ("sts:AssumeRole", "sts:GetCallerIdentity"),
}
# Actions with no resource type (Service Authorization Reference, ECR and STS): their statement keeps "*".
UNSCOPABLE_ENDPOINT_ACTIONS = ("ecr:GetAuthorizationToken", "sts:GetCallerIdentity")


def interface_endpoint_resources(cfg: EnvConfig, service: str) -> list[Sub]:
    """What an interface endpoint's scopable actions may reach: this environment's resource where the network tier
    can name it (the processor's log group, the state machine), else this account's and region's of the type (the
    processor's repository comes with the image at deploy time, RDS names the master secret)."""
    log_group = f"log-group:{names.processor_log_group(cfg.name)}"
    machine = names.state_machine(cfg.name)
    return {
        "ecr": [blocks.arn("ecr", "repository/*")],
        "logs": [blocks.arn("logs", log_group), blocks.arn("logs", f"{log_group}:log-stream:*")],
        "secretsmanager": [blocks.arn("secretsmanager", "secret:*")],
        "states": [blocks.arn("states", f"stateMachine:{machine}"), blocks.arn("states", f"execution:{machine}:*")],
        "sts": [Sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:role/*")],
    }[service.split(".")[0]]


# CloudFormation's custom-resource response bucket is named after the region WITHOUT its dashes (us-west-2 gives
# cloudformation-custom-resource-response-uswest2): "Access CloudFormation using an interface endpoint", custom
# resources (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/vpc-interface-endpoints.html), and the
# ResponseURL of the event in https://docs.aws.amazon.com/lambda/latest/dg/services-cloudformation.html.
# CloudFormation has no replace function: join the region's parts split at "-".
REGION_WITHOUT_DASHES = "RegionWithoutDashes"
# AWS-owned buckets reached through the S3 gateway with URLs that AWS signs: ECR's image layers (the region with
# its dashes: https://docs.aws.amazon.com/AmazonECR/latest/userguide/vpc-endpoints.html) and CloudFormation's
# custom resource responses (the database bootstrap's answer).
AWS_OWNED_BUCKET_OBJECTS = {
    "s3:GetObject": "arn:${AWS::Partition}:s3:::prod-${AWS::Region}-starport-layer-bucket/*",
    "s3:PutObject": "arn:${AWS::Partition}:s3:::cloudformation-custom-resource-response-${RegionWithoutDashes}/*",
}


def aws_owned_bucket_objects(arn: str) -> Sub:
    if "${" + REGION_WITHOUT_DASHES + "}" in arn:
        return Sub(arn, **{REGION_WITHOUT_DASHES: Join("", Split("-", Ref(AWS_REGION)))})
    return Sub(arn)


# SNS for the VPC-attached functions: the scheduler reports executions that ended without a handler on the error
# topic. Step Functions publishes the outcomes from the service itself, not from the VPC, so no endpoint carries
# its calls (https://docs.aws.amazon.com/step-functions/latest/dg/connect-sns.html), and the completion topic has no
# publisher here. The network comes before the notification tier, so the topic is named by its physical name.
SNS_ENDPOINT = "sns"
SNS_ENDPOINT_ACTIONS = ("sns:Publish",)
SNS_TOPIC_KINDS_PUBLISHED_FROM_VPC = ("error",)


# The groups whose members call AWS APIs from the private subnets: the endpoints' group admits each on 443 (the
# scheduler for Step Functions and the error topic; with private DNS, a caller not admitted has no route at all).
ENDPOINT_CLIENTS = (contracts.TASK_SECURITY_GROUP_ID, contracts.API_FUNCTION_SECURITY_GROUP_ID,
                    contracts.SCHEDULER_FUNCTION_SECURITY_GROUP_ID, contracts.DATABASE_BOOTSTRAP_SECURITY_GROUP_ID)


def endpoint_title(service: str) -> str:
    return "".join(part.capitalize() for part in service.replace(".", " ").split()) + "Endpoint"


def this_account_only() -> Condition:
    return Condition(StringEquals("aws:PrincipalAccount", Ref(AWS_ACCOUNT_ID)))


def sns_endpoint_policy(cfg: EnvConfig) -> PolicyDocument:
    """Publishing, by this account's principals, to this environment's topics that VPC-attached callers publish to
    (`arn:<partition>:sns:<region>:<account>:<name>`)."""
    return PolicyDocument(Version="2012-10-17", Statement=[Statement(
        Sid="ThisEnvironmentsTopics", Effect=Allow, Principal=Principal("AWS", [blocks.account_root()]),
        Action=[Action(*a.split(":")) for a in SNS_ENDPOINT_ACTIONS],
        Resource=[blocks.arn("sns", names.topic(kind, cfg.name))
                  for kind in sorted(SNS_TOPIC_KINDS_PUBLISHED_FROM_VPC)],
        Condition=Condition(StringEquals("aws:PrincipalAccount", Ref(AWS_ACCOUNT_ID))),
    )])


def interface_endpoint_policy(cfg: EnvConfig, service: str, actions: tuple[str, ...]) -> PolicyDocument:
    """The named actions on interface_endpoint_resources (Resource "*" only for the actions that have no resource
    type), for this account's principals only: for an interface endpoint the account root principal means every
    principal of the account, and `aws:PrincipalAccount` says it again."""
    def statement(sid: str, named: list[str], resources: list) -> Statement:
        return Statement(Sid=sid, Effect=Allow, Principal=Principal("AWS", [blocks.account_root()]),
                         Action=[Action(*a.split(":")) for a in named], Resource=resources,
                         Condition=this_account_only())

    scoped = [a for a in sorted(actions) if a not in UNSCOPABLE_ENDPOINT_ACTIONS]
    unscopable = [a for a in sorted(actions) if a in UNSCOPABLE_ENDPOINT_ACTIONS]
    return PolicyDocument(Version="2012-10-17", Statement=[
        *([statement("ThisAccountOnly", scoped, interface_endpoint_resources(cfg, service))] if scoped else []),
        *([statement("ThisAccountOnlyNoResourceType", unscopable, ["*"])] if unscopable else []),
    ])


# A gateway endpoint's policy reads an account-root principal as the root user alone: its principal must be "*",
# narrowed by a condition (aws:PrincipalAccount here). PrivateLink Guide, "Control access to VPC endpoints using
# endpoint policies", Principals for gateway endpoints
# (https://docs.aws.amazon.com/vpc/latest/privatelink/vpc-endpoints-access.html#vpc-endpoint-policies-gateway).
def dynamodb_endpoint_policy() -> PolicyDocument:
    """This account's principals on this account's tables in the region, with the actions job control uses."""
    return PolicyDocument(Version="2012-10-17", Statement=[Statement(
        Sid="ThisAccountsTables", Effect=Allow, Principal=Principal("*"),
        Action=list(job_control.TABLE_ACTIONS),
        Resource=[Sub("arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/*")],
        Condition=this_account_only(),
    )])


# What the VPC-attached callers do in this account's buckets: the API function lists and aborts multipart uploads
# of sources and reads manifests, the scheduler reads a source's metadata, the processor reads the source's version,
# writes, reads back and lists outputs (a read of a missing key answers 404 only with s3:ListBucket). The access
# proof (rule VP701) judges each recorded call against this list.
S3_ENDPOINT_ACTIONS = ("s3:AbortMultipartUpload", "s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket",
                       "s3:ListMultipartUploadParts", "s3:PutObject")


def s3_endpoint_policy() -> PolicyDocument:
    """This account's buckets for its principals, with the actions above ("*" narrowed by condition, as a gateway
    endpoint needs); and the AWS-owned buckets above, whose URLs AWS signs (so no principal of this account can be
    required), one named bucket and action each."""
    return PolicyDocument(Version="2012-10-17", Statement=[
        Statement(Sid="ThisAccountsBuckets", Effect=Allow, Principal=Principal("*"),
                  Action=[Action(*a.split(":")) for a in S3_ENDPOINT_ACTIONS], Resource=["*"],
                  Condition=Condition(StringEquals({"aws:PrincipalAccount": Ref(AWS_ACCOUNT_ID),
                                                    "s3:ResourceAccount": Ref(AWS_ACCOUNT_ID)}))),
        *[Statement(Sid=f"AwsOwned{action.split(':')[1]}", Effect=Allow, Principal=Principal("*"),
                    Action=[Action(*action.split(":"))], Resource=[aws_owned_bucket_objects(bucket)])
          for action, bucket in sorted(AWS_OWNED_BUCKET_OBJECTS.items())],
    ])


def _interface_endpoints(t: Template, cfg: EnvConfig, vpc: VPC, private: list[Subnet], groups: dict) -> None:
    clients = [groups[c] for c in ENDPOINT_CLIENTS]
    group = t.add_resource(SecurityGroup(
        "EndpointSecurityGroup", GroupDescription=f"VPC interface endpoints ({cfg.name})", VpcId=Ref(vpc),
        SecurityGroupIngress=[SecurityGroupRule(SourceSecurityGroupId=GetAtt(g, "GroupId"), IpProtocol="tcp",
                                                FromPort=HTTPS_PORT, ToPort=HTTPS_PORT,
                                                Description=f"HTTPS from {g.title}") for g in clients],
        SecurityGroupEgress=[NO_EGRESS], Tags=blocks.tags(cfg),
    ))
    for service, actions in sorted(INTERFACE_ENDPOINTS.items()):
        t.add_resource(VPCEndpoint(
            endpoint_title(service), VpcId=Ref(vpc), VpcEndpointType="Interface", PrivateDnsEnabled=True,
            ServiceName=Sub(f"com.amazonaws.${{AWS::Region}}.{service}"),
            SubnetIds=[Ref(s) for s in private], SecurityGroupIds=[GetAtt(group, "GroupId")],
            PolicyDocument=interface_endpoint_policy(cfg, service, actions),
        ))
    t.add_resource(VPCEndpoint(
        endpoint_title(SNS_ENDPOINT), VpcId=Ref(vpc), VpcEndpointType="Interface", PrivateDnsEnabled=True,
        ServiceName=Sub(f"com.amazonaws.${{AWS::Region}}.{SNS_ENDPOINT}"),
        SubnetIds=[Ref(s) for s in private], SecurityGroupIds=[GetAtt(group, "GroupId")],
        PolicyDocument=sns_endpoint_policy(cfg),
    ))
