"""The documentation: a README a newcomer finishes, links and paths that lead somewhere, and generated blocks
(generator/docs.py) that are fresh, that `python -m generator --check` reports when stale and `python -m generator`
rewrites without touching the text around them. The tier diagram follows the registry and the contracts."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from generator import contracts, docs
from generator.__main__ import main
from generator.errors import WiringError
from generator.tiers import TIERS, Tier

from conftest import REPO

README_MAX_LINES = 300
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# Backticked repository paths the documents name (placeholders such as <env>, NNNN or * are not paths).
PATH_PREFIXES = ("generator/", "tests/", "scripts/", "deploytools/", "docs/", "templates/", ".ci/", ".github/")


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)  # no headings in code
    return {slug(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}


def test_the_readme_is_short_enough_to_finish():
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move detail into docs/"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_every_relative_link_reaches_a_file_and_its_heading(document):
    problems = []
    for target in LINK.findall(document.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        linked = (document.parent / path).resolve() if path else document
        if not linked.is_file():
            problems.append(f"{target}: no file {linked}")
        elif anchor and anchor not in anchors(linked):
            problems.append(f"{target}: no heading with anchor #{anchor} in {linked.name}")
    assert not problems, f"{document.name}: " + "; ".join(problems)


def test_the_readme_leads_to_every_document_in_docs():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    linked = {target.split("#")[0] for target in LINK.findall(readme)}
    missing = [p.name for p in DOCUMENTS[1:] if f"docs/{p.name}" not in linked]
    assert not missing, f"README.md's 'Where to read on' does not lead to {missing}"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_every_repository_path_a_document_names_exists(document):
    problems = []
    for quoted in re.findall(r"`([^`\n]+)`", document.read_text(encoding="utf-8")):
        word = quoted.split()[0] if quoted.split() else ""
        if not word.startswith(PATH_PREFIXES) or re.search(r"[<*{]|NNNN|\.\.\.|/E/", word):
            continue
        path, _, test = word.partition("::")
        if not (REPO / path).exists():
            problems.append(f"{word}: no such file")
        elif test and f"def {test.split('[')[0]}(" not in (REPO / path).read_text(encoding="utf-8"):
            problems.append(f"{word}: no such test in {path}")
    assert not problems, f"{document.name}: " + "; ".join(problems)


def test_every_path_of_the_code_map_exists():
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    code_map = text.split("## Code map", 1)[1].split("```", 2)[1]
    paths = [line.split()[0] for line in code_map.splitlines() if line and not line.startswith(" ")]
    assert len(paths) > 10 and [p for p in paths if not (REPO / p).exists()] == [], "docs/architecture.md, Code map"


def test_every_dev_sh_task_the_readme_names_exists():
    tasks = set(re.findall(r"^  (\w+)\)", (REPO / "dev.sh").read_text(encoding="utf-8"), flags=re.MULTILINE))
    named = set(re.findall(r"\./dev\.sh (\w+)", (REPO / "README.md").read_text(encoding="utf-8")))
    assert named and named <= tasks, f"README.md names ./dev.sh tasks {sorted(named - tasks)} that dev.sh lacks"


# --------------------------------------------------------------------------------------------------
# Generated blocks

def test_every_generated_block_is_fresh(rendered):
    assert docs.stale(rendered) == [], f"generated blocks are stale: {docs.FIX}"


def test_each_block_has_its_own_file_and_marker():
    assert len({(b.path, b.marker) for b in docs.BLOCKS}) == len({b.marker for b in docs.BLOCKS}) == len(docs.BLOCKS)
    assert all(b.path.startswith("docs/") and (REPO / b.path).is_file() for b in docs.BLOCKS)


@pytest.fixture()
def copy_of_docs(tmp_path) -> Path:
    """A root holding a copy of docs/ and the committed templates' place, as follow() expects."""
    shutil.copytree(REPO / "docs", tmp_path / "docs")
    (tmp_path / "templates").mkdir()
    return tmp_path


def test_check_names_the_stale_file_and_the_command_and_a_run_rewrites_only_the_block(rendered, copy_of_docs, capsys):
    capacity = copy_of_docs / "docs" / "capacity.md"
    fresh = capacity.read_text(encoding="utf-8")
    capacity.write_text(fresh.replace("binds first: max_concurrent_videos (12)", "binds first: RunTask"),
                        encoding="utf-8")
    out = copy_of_docs / "templates"

    assert docs.follow(rendered, check=True, out=out, whole=True, root=copy_of_docs) == 1
    err = capsys.readouterr().err
    assert "stale:   docs/capacity.md (generated block `capacity`)" in err and "run `python -m generator`" in err
    assert err.count("stale:") == 1, "only the edited block is stale"

    assert docs.follow(rendered, check=False, out=out, whole=True, root=copy_of_docs) == 0
    assert capacity.read_text(encoding="utf-8") == fresh, "the rewrite restores the block and keeps the rest"
    assert "rewrote docs/capacity.md" in capsys.readouterr().out
    assert docs.follow(rendered, check=True, out=out, whole=True, root=copy_of_docs) == 0


def test_an_edit_outside_the_markers_is_kept(rendered, copy_of_docs):
    operations = copy_of_docs / "docs" / "operations.md"
    operations.write_text(operations.read_text(encoding="utf-8") + "\nA note of our own.\n", encoding="utf-8")
    docs.follow(rendered, check=False, out=copy_of_docs / "templates", whole=True, root=copy_of_docs)
    assert operations.read_text(encoding="utf-8").endswith("\nA note of our own.\n")


@pytest.mark.parametrize("run", [{"whole": False}, {"out": "elsewhere"}], ids=["--env or --config", "--out"])
def test_a_run_that_is_not_over_the_committed_templates_leaves_the_docs_alone(rendered, copy_of_docs, run):
    capacity = copy_of_docs / "docs" / "capacity.md"
    capacity.write_text("stale, but not this run's business\n<!-- capacity:begin -->\nx<!-- capacity:end -->\n")
    before = capacity.read_text()
    out = copy_of_docs / run.get("out", "templates")
    assert docs.follow(rendered, check=True, out=out, whole=run.get("whole", True), root=copy_of_docs) == 0
    docs.follow(rendered, check=False, out=out, whole=run.get("whole", True), root=copy_of_docs)
    assert capacity.read_text() == before


def test_a_file_without_its_markers_is_one_line_naming_it(rendered, copy_of_docs):
    security = copy_of_docs / "docs" / "security.md"
    security.write_text(security.read_text(encoding="utf-8").replace("<!-- security-skips:end -->", ""))
    with pytest.raises(docs.DocsError, match=r"docs/security.md needs one line `<!-- security-skips:begin -->`"):
        docs.follow(rendered, check=True, out=copy_of_docs / "templates", whole=True, root=copy_of_docs)


def test_the_check_command_covers_the_docs(capsys):
    """`python -m generator --check` over the committed templates reports on the docs too (CI runs it)."""
    assert main(["--check"]) == 0
    assert "docs up to date" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------------
# The tier diagram

def edges(diagram: str) -> list[tuple[str, list[str], str]]:
    """(source, contract names, consumer) of each arrow of the Mermaid flowchart."""
    found = re.findall(r'^  (\w+) (?:--|-\.) "([^"]+)" (?:-->|\.->) (\w+)$', diagram, flags=re.MULTILINE)
    return [(source.removeprefix("tier_"), label.split(", "), consumer.removeprefix("tier_"))
            for source, label, consumer in found]


def test_each_arrow_carries_contracts_its_source_produces_and_its_consumer_consumes():
    by_name = {t.name: t for t in TIERS}
    deploy_time = {c.name for c in contracts.DEPLOY_TIME}
    arrows = edges(docs.tier_diagram())
    for source, names, consumer in arrows:
        produced = deploy_time if source == "parent" else {c.name for c in by_name[source].produces}
        assert set(names) <= produced and set(names) <= {c.name for c in by_name[consumer].consumes}, (source, consumer)
    # Every consumed contract is on exactly one arrow into its consumer.
    for t in TIERS:
        carried = [n for _, names, consumer in arrows if consumer == t.name for n in names]
        assert sorted(carried) == sorted(c.name for c in t.consumes), t.name


def test_a_stack_is_deeper_than_every_stack_it_consumes_from():
    depth = docs.depths()
    for source, _, consumer in edges(docs.tier_diagram()):
        if source != "parent":
            assert depth[consumer] > depth[source], (source, consumer)
    assert min(depth.values()) == 1


def test_a_tier_added_to_the_registry_appears_with_its_wiring():
    extra = contracts.Contract("MediaBucketArn", "a bucket")
    uploads = Tier("uploads", "UploadsStack", TIERS[0].build, (contracts.VPC_ID, contracts.OPS_TOPIC_ARN), (extra,))
    diagram = docs.tier_diagram((*TIERS, uploads))
    assert {("network", ("VpcId",)), ("operations", ("OpsTopicArn",))} <= {
        (source, tuple(names)) for source, names, consumer in edges(diagram) if consumer == "uploads"}
    assert "| `uploads` (`UploadsStack`) | network: `VpcId`; operations: `OpsTopicArn` | `MediaBucketArn` |" in diagram


def test_a_contract_nobody_produces_is_refused_naming_it():
    orphan = Tier("uploads", "UploadsStack", TIERS[0].build, (contracts.Contract("Nowhere", "x"),), ())
    with pytest.raises(WiringError, match="tier uploads consumes Nowhere, which no earlier tier produces"):
        docs.tier_diagram((*TIERS, orphan))


def test_every_tier_is_described_in_the_readme_and_in_the_architecture_table_of_what_it_owns():
    """The descriptions are hand-written (the diagram is not): a tier added to the registry must be described."""
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = [t.name for t in TIERS if not re.search(rf"^\| {t.name} \| .+ \| `{t.name}\.json` \|$", text, re.M)]
    assert not missing, f"docs/architecture.md's table of what each tier owns lacks {missing}"
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert [t.name for t in TIERS if f"**{t.name}**" not in readme] == [], "README.md's 'What is in the templates'"
