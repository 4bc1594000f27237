"""Each tier declares what it consumes and produces; the registry titles its stacks; names live in one module."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from troposphere import Output, Parameter, Template

from generator import config, contracts, parent, tiers
from generator.errors import WiringError
from generator.tiers import TIERS, Tier

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("env", list(config.ENVIRONMENTS))
def test_each_tier_declares_exactly_its_parameters_and_outputs(templates, env):
    for tier in TIERS:
        body = templates[env][tier.name]
        assert sorted(body.get("Parameters", {})) == sorted(c.name for c in tier.consumes), tier.name
        assert sorted(body.get("Outputs", {})) == sorted(c.name for c in tier.produces), tier.name
        for c in tier.consumes:
            assert body["Parameters"][c.name] == {"Type": c.type, "Description": c.description}
        assert all(isinstance(c, contracts.Contract) for c in (*tier.consumes, *tier.produces))


def test_every_consumed_contract_is_produced_by_an_earlier_tier_or_the_parent():
    produced = set(contracts.DEPLOY_TIME)
    for tier in TIERS:
        assert set(tier.consumes) <= produced, f"{tier.name} consumes {set(tier.consumes) - produced}"
        assert not set(tier.produces) & produced, f"{tier.name} produces what another tier does"
        produced |= set(tier.produces)


def _tier(name: str, title: str) -> Tier:
    return Tier(name, title, lambda cfg: Template(), (), ())


@pytest.mark.parametrize("registry, message", [
    ((_tier("network", "NetworkStack"), _tier("video_uploads", "NetworkStack")), "title NetworkStack registered twice"),
    ((_tier("network", "NetworkStack"), _tier("network", "OtherStack")), "name network registered twice"),
    ((_tier("video_uploads", "Video_UploadsStack"),), "'Video_UploadsStack' is not a logical ID"),
    ((_tier("video_uploads", ""),), "'' is not a logical ID"),
])
def test_the_registry_refuses_duplicate_or_unusable_titles(registry, message):
    with pytest.raises(WiringError, match=message):
        tiers.check_tiers(registry)


def test_a_two_word_tier_gets_its_registered_title_in_the_parent(monkeypatch):
    uploads = _tier("video_uploads", "VideoUploadsStack")
    monkeypatch.setattr(tiers, "TIERS", tiers.check_tiers((*TIERS, uploads)))
    network = Template()
    network.add_output(Output(contracts.VPC_ID.name, Value="vpc-1", Description="d"))
    child = Template()
    child.add_parameter(Parameter(contracts.VPC_ID.name, Type="String"))
    main = parent.build(config.get("dev"), {"network": network, "video_uploads": child}).to_dict()
    stack = main["Resources"]["VideoUploadsStack"]["Properties"]
    assert stack["TemplateURL"] == "video_uploads.json"
    assert stack["Parameters"] == {"VpcId": {"Fn::GetAtt": ["NetworkStack", "Outputs.VpcId"]}}


def test_an_unregistered_tier_is_a_wiring_error():
    with pytest.raises(WiringError, match="no tier 'uploads'"):
        tiers.title("uploads")


def test_the_project_prefix_is_spelled_only_in_config_and_names():
    spelled = [f"{path.relative_to(ROOT)}:{n}" for path in sorted((ROOT / "generator").rglob("*.py"))
               if path.name not in ("config.py", "names.py")
               for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
               if config.PROJECT in line]
    assert spelled == []


def test_tiers_read_parameters_by_contract_not_by_literal_key():
    names = {c.name for c in vars(contracts).values() if isinstance(c, contracts.Contract)}
    sources = [*sorted((ROOT / "generator" / "tiers").glob("*.py")), ROOT / "generator" / "state_machine.py"]
    found = [f"{path.name}: {key}" for path in sources
             for key in re.findall(r'\["([A-Za-z]+)"\]', path.read_text(encoding="utf-8")) if key in names]
    assert found == []


def test_generation_does_not_import_boto3():
    code = ("import sys; from generator import config, render; "
            "[render.render_environment(c) for c in config.ENVIRONMENTS.values()]; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_environments_subcommand_lists_each_environment_and_its_region():
    result = subprocess.run([sys.executable, "-m", "generator", "environments"], cwd=ROOT, capture_output=True,
                            text=True, check=True)
    assert result.stdout == "".join(f"{c.name}\t{c.region}\n" for c in config.ENVIRONMENTS.values())
    assert result.stdout.splitlines()[0] == "dev\tap-northeast-1"
