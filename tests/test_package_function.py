"""deploy.sh's function packages: built from the hash-pinned requirements, byte-identical across builds."""

from __future__ import annotations

import zipfile

import pytest

from deploytools import package_function
from generator import job_control
from generator.errors import PackageError
from generator.functions.video_jobs import contract
from generator.tiers import schema

pytestmark = pytest.mark.slow


def reproducible_package(source, tmp_path) -> list[str]:
    """Build the package twice: byte-identical, entries sorted, fixed times and modes. Returns its entries."""
    first = package_function.build(source, tmp_path / "a" / f"{source.name}.zip")
    second = package_function.build(source, tmp_path / "b" / f"{source.name}.zip")
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as archive:
        infos = archive.infolist()
    names = [i.filename for i in infos]
    assert names == sorted(names)
    assert {i.date_time for i in infos} == {package_function.FIXED_TIME}
    assert {i.external_attr >> 16 for i in infos} == {0o100644}
    return names


def test_the_bootstrap_package_is_reproducible_and_complete(tmp_path):
    names = reproducible_package(schema.FUNCTION_SOURCE, tmp_path)
    assert "handler.py" in names and "pg8000/native.py" in names and "scramp/__init__.py" in names
    assert {n for n in names if n.startswith("migrations/")} == {
        f"migrations/{p.name}" for p in schema.MIGRATIONS.iterdir()}
    assert "requirements.txt" not in names and not any(n.endswith(".pyc") for n in names)


def test_an_unpinned_requirement_is_refused(tmp_path):
    source = tmp_path / "fn"
    source.mkdir()
    (source / "handler.py").write_text("def handler(event, context):\n    pass\n")
    (source / "requirements.txt").write_text("six\n")  # no version, no hash
    with pytest.raises(PackageError, match="installing"):
        package_function.build(source, tmp_path / "fn.zip")


def test_the_template_names_the_package_deploy_sh_builds(templates):
    function = templates["dev"]["schema"]["Resources"]["BootstrapFunction"]["Properties"]
    assert function["Code"] == schema.PACKAGE_PATH == "functions/db_bootstrap.zip"
    assert function["Handler"] == "handler.handler"


@pytest.mark.parametrize(("text", "lists"), [
    ("# nothing beyond the runtime's boto3\n", False),
    ("", False),
    ("\n   \n# a comment\n--index-url https://pypi.org/simple  # options alone\n", False),
    ("six==1.17.0 --hash=sha256:" + "0" * 64 + "\n", True),
    ("   # indented comment\nsix==1.17.0  # pinned\n", True),
    ("-r other.txt\n", True),
    ("--requirement=other.txt\n", True),
])
def test_a_requirements_file_lists_requirements_only_beyond_comments_and_options(tmp_path, text, lists):
    (tmp_path / "requirements.txt").write_text(text)
    assert package_function.lists_requirements(tmp_path / "requirements.txt") is lists


def test_the_job_control_package_is_its_sources_and_redis_and_is_reproducible(tmp_path):
    """video_jobs needs redis-py beyond the runtime's boto3 (GET's progress): the package holds exactly the package's
    files and redis-py (nothing else: it needs no other package on the python3.14 runtime), byte-identical across
    builds."""
    source = job_control.FUNCTION_SOURCE
    assert package_function.lists_requirements(source / "requirements.txt")
    names = reproducible_package(source, tmp_path)
    own = sorted(p.relative_to(source).as_posix() for p in source.rglob("*.py") if "__pycache__" not in p.parts)
    assert [n for n in names if not n.startswith(("redis/", "redis-8.2.0.dist-info/"))] == own
    assert "redis/__init__.py" in names and "redis/credentials.py" in names and "contract.py" in names
    assert "jobs/cache_connection.py" in names and "jobs/progress.py" in names
    for handler in (contract.API_HANDLER, contract.SCHEDULER_HANDLER):
        assert f"{handler.split('.')[0]}.py" in names


def test_the_templates_name_the_job_control_package_deploy_sh_builds(templates):
    for tier, title, handler in (("jobs", "SchedulerFunction", contract.SCHEDULER_HANDLER),
                                 ("api", "Function", contract.API_HANDLER)):
        function = templates["dev"][tier]["Resources"][title]["Properties"]
        assert function["Code"] == job_control.PACKAGE_PATH == "functions/video_jobs.zip"
        assert function["Handler"] == handler
