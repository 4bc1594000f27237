"""Each tier declares what it consumes and produces; the registry titles its stacks; names live in one module;
tiers meet only through contracts and shared helpers, never by importing one another."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
from troposphere import Output, Parameter, Template

from generator import config, contracts, names, parent, tiers
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


# Where a prefix may be spelled outside generator/names.py, and why it is not a physical name there. Tests spell the
# names they expect (the other side of the contract operators and alarms rely on), README and docs show them, and
# templates/ is generated: none of those is searched.
NOT_A_PHYSICAL_NAME = {
    "setup.cfg": "the Python distribution's name",
    "scripts/pr_comment.py": "the HTML marker by which the review job finds its own pull-request comment",
}


def code_files() -> list[Path]:
    """Every file that builds or uses names: the generator, the deploy tools and scripts, CI and the root's files."""
    files = [p for p in ROOT.iterdir() if p.is_file() and p.suffix not in (".md",) and not p.name.startswith(".")]
    for folder in ("generator", "deploytools", "scripts", ".github", ".ci"):
        files += [p for p in (ROOT / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    return sorted(files)


@pytest.mark.parametrize("prefix", names.PREFIXES)
def test_each_name_prefix_is_spelled_only_in_names(prefix):
    """One place for every physical name: deploy.sh and the deploy tools ask generator/names.py for theirs."""
    assert {"deploy.sh", "deploytools/smoke.py", "generator/config.py"} <= {
        str(p.relative_to(ROOT)) for p in code_files()}  # the search reaches where the prefixes used to be
    spelled = [f"{path.relative_to(ROOT)}:{n}" for path in code_files()
               if path != ROOT / "generator" / "names.py" and str(path.relative_to(ROOT)) not in NOT_A_PHYSICAL_NAME
               for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
               if prefix in line]
    assert spelled == []


def test_names_prints_what_deploy_sh_asks_for():
    def run(*args: str) -> str:
        return subprocess.run([sys.executable, "-m", "generator.names", *args], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout

    assert run("stack", "--env", "staging") == names.parent_stack("staging") + "\n"
    assert run("artifact-bucket", "--account", "123456789012", "--region", "eu-west-1") == (
        names.artifact_bucket("123456789012", "eu-west-1") + "\n")
    bad = subprocess.run([sys.executable, "-m", "generator.names", "stack"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and "--env" in bad.stderr and "Traceback" not in bad.stderr


def test_deployment_names_start_with_the_deployment_prefix_and_fit_aws():
    stack, bucket = names.parent_stack("prod"), names.artifact_bucket("123456789012", "ap-northeast-1")
    assert stack.startswith(f"{names.DEPLOYMENT}-") and bucket.startswith(f"{names.DEPLOYMENT}-")
    # S3 bucket names: 3-63 characters, https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
    assert len(names.artifact_bucket("123456789012", "ap-southeast-4")) <= 63
    # SQS queue names: at most 80 characters, https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_CreateQueue.html
    assert len(names.smoke_queue("0123abcd")) <= 80


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


# --------------------------------------------------------------------------------------------------
# Tiers meet only through contracts (generator/contracts.py) and shared helpers (blocks, names, aws_facts): a tier
# importing another would make one's edit another's break, and the registry's order no longer the whole story.

TIER_DIR = ROOT / "generator" / "tiers"
TIER_NAMES = frozenset(p.stem for p in TIER_DIR.glob("*.py") if p.stem != "__init__")
# Tier pairs allowed to import each other: none (what api and jobs share lives in generator/job_control.py).
KNOWN_TIER_IMPORTS: frozenset[tuple[str, str]] = frozenset()


def imported_tiers(source: str) -> set[str]:
    """Tier modules (or "__init__", the registry) that a module's source imports, anywhere in it (a function-level
    import counts): `import generator.tiers.x`, `from generator.tiers import x`, `from generator.tiers.x import y`,
    `from generator import tiers`, and relative forms."""
    found: set[str] = set()

    def from_package(names: list[str]) -> None:
        found.update(n if n in TIER_NAMES else "__init__" for n in names)

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[:2] == ["generator", "tiers"]:
                    found.add(parts[2] if len(parts) > 2 else "__init__")
        elif isinstance(node, ast.ImportFrom):
            names = [a.name for a in node.names]
            module = (node.module or "").split(".")
            if node.level == 1 and module[0]:  # from .x import y, inside generator/tiers/
                found.add(module[0])
            elif node.level == 1:  # from . import x
                from_package(names)
            elif node.level == 0 and module[:2] == ["generator", "tiers"]:
                if len(module) > 2:
                    found.add(module[2])
                else:
                    from_package(names)
            elif node.level == 0 and module == ["generator"] and "tiers" in names:
                found.add("__init__")
    return found


@pytest.mark.parametrize("source, expected", [
    ("from generator.tiers.compute import capacity_provider_strategy", {"compute"}),
    ("from generator.tiers import storage, TIERS", {"storage", "__init__"}),
    ("import generator.tiers.jobs as jobs", {"jobs"}),
    ("def f():\n    from generator.tiers.jobs import TABLE_ACTIONS", {"jobs"}),
    ("from .network import x\nfrom . import cache", {"network", "cache"}),
    ("from generator import tiers", {"__init__"}),
    ("from generator import blocks, contracts, names\nfrom generator.functions.video_jobs import contract", set()),
])
def test_the_import_finder_sees_every_form_of_tier_import(source, expected):
    assert imported_tiers(source) == expected


def test_no_tier_imports_another_tier():
    found = {(path.stem, other) for path in sorted(TIER_DIR.glob("*.py")) if path.stem in TIER_NAMES
             for other in imported_tiers(path.read_text(encoding="utf-8")) if other != path.stem}
    assert found - KNOWN_TIER_IMPORTS == set(), "move what they share to contracts.py, blocks.py or names.py"
    assert KNOWN_TIER_IMPORTS - found == set(), "no longer imported: remove it from KNOWN_TIER_IMPORTS"
