"""deploy.sh's function packages: built from the hash-pinned requirements, byte-identical across builds."""

from __future__ import annotations

import zipfile

import pytest

from deploytools import package_function
from generator.errors import PackageError
from generator.tiers import schema

pytestmark = pytest.mark.slow


def test_the_bootstrap_package_is_reproducible_and_complete(tmp_path):
    first = package_function.build(schema.FUNCTION_SOURCE, tmp_path / "a" / "db_bootstrap.zip")
    second = package_function.build(schema.FUNCTION_SOURCE, tmp_path / "b" / "db_bootstrap.zip")
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as archive:
        infos = archive.infolist()
    names = [i.filename for i in infos]
    assert names == sorted(names)
    assert {i.date_time for i in infos} == {package_function.FIXED_TIME}
    assert {i.external_attr >> 16 for i in infos} == {0o100644}
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
