"""The parent template (main.json): one AWS::CloudFormation::Stack per tier, wired by contracts.

Every child Parameter is fed either by a parent deploy-time parameter or by the Output of the same
name of exactly one earlier tier. The wiring is derived from the child templates themselves, so the
only dependencies between stacks are the ones the data flow creates (no DependsOn): independent
tiers deploy in parallel.
"""

from __future__ import annotations

from troposphere import GetAtt, Output, Parameter, Ref, Template
from troposphere.cloudformation import Stack

from generator import blocks, contracts, tiers
from generator.config import EnvConfig
from generator.errors import WiringError

# (contract, tier that produces it): surfaced as the parent's own outputs.
PARENT_OUTPUTS = (
    (contracts.STATE_MACHINE_ARN, "workflow"),
    (contracts.COMPLETION_TOPIC_ARN, "notification"),
    (contracts.ERROR_TOPIC_ARN, "notification"),
    (contracts.API_URL, "api"),
    (contracts.OPS_TOPIC_ARN, "operations"),
    (contracts.DASHBOARD_NAME, "operations"),
)


# An image pinned by tag (never latest) or by digest; where the setting asks (prod), by digest only: a tag can be
# moved to other content, a digest cannot.
TAG_OR_DIGEST = r"^[^:@\s]+(:(?!latest$)[\w][\w.-]{0,127}|@sha256:[a-f0-9]{64})$"
DIGEST_ONLY = r"^[^@\s]+@sha256:[a-f0-9]{64}$"


def processor_image_parameter(cfg: EnvConfig) -> Parameter:
    if cfg.require_image_digest:
        # No default: the placeholder image is pinned by tag, and prod runs only what the deployer names.
        return Parameter(contracts.PROCESSOR_IMAGE.name, Type="String",
                         Description=contracts.PROCESSOR_IMAGE.description, AllowedPattern=DIGEST_ONLY,
                         ConstraintDescription="an image reference pinned by digest (<repository>@sha256:<64 hex>)")
    return Parameter(contracts.PROCESSOR_IMAGE.name, Type="String", Default=contracts.DEFAULT_PROCESSOR_IMAGE,
                     Description=contracts.PROCESSOR_IMAGE.description, AllowedPattern=TAG_OR_DIGEST,
                     ConstraintDescription="an image reference with a pinned tag (not latest) or a sha256 digest")


def build(cfg: EnvConfig, children: dict[str, Template]) -> Template:
    t = blocks.new_template(cfg, "Video processing pipeline: parent of the per-tier nested stacks")
    deploy_time = {
        contracts.PROCESSOR_IMAGE.name: processor_image_parameter(cfg),
        **{contract.name: Parameter(
            contract.name, Type="String", Default="",
            Description=contract.description,
            AllowedPattern=r"^$|^[^@\s]+@[^@\s]+\.[^@\s]+$",
            ConstraintDescription="empty, or a single e-mail address",
        ) for contract in (contracts.NOTIFICATION_EMAIL, contracts.OPS_EMAIL)},
    }
    for p in deploy_time.values():
        t.add_parameter(p)

    produced: dict[str, list[str]] = {}
    for tier, child in children.items():
        wiring = {}
        for name in sorted(child.parameters):
            if name in deploy_time:
                wiring[name] = Ref(name)
                continue
            producers = produced.get(name, [])
            if len(producers) != 1:
                found = ", ".join(producers) or "none"
                raise WiringError(f"{cfg.name}: parameter {name} of tier {tier} needs exactly one earlier "
                                  f"tier with an Output of that name (found: {found}); see contracts.py and "
                                  "the registry order in tiers/__init__.py")
            wiring[name] = GetAtt(tiers.title(producers[0]), f"Outputs.{name}")
        t.add_resource(Stack(
            tiers.title(tier),
            TemplateURL=f"{tier}.json",
            # Local paths are the point: `aws cloudformation package` uploads them, cfn-lint follows them.
            Metadata={"cfn-lint": {"config": {"ignore_checks": ["W3002"]}}},
            Parameters=wiring,
            Tags=blocks.tags(cfg, Tier=tier),
        ))
        for name in child.outputs:
            produced.setdefault(name, []).append(tier)

    for contract, tier in PARENT_OUTPUTS:
        if tier in children:
            t.add_output(Output(contract.name, Description=contract.description,
                                Value=GetAtt(tiers.title(tier), f"Outputs.{contract.name}")))
    return t
