"""`diff --stack` right after a deploy: a packaged function's Code (an S3 location, as `aws cloudformation package`
wrote it) is no change when it is the package deploy.sh builds now from the same sources; it is one when the
sources differ. It used to show every packaged function as changed after every deploy (three stacks of dev), which
made `--fail-on any` useless. End to end against a stack deploy.sh deployed: tests/test_local_pipeline.py."""

from __future__ import annotations

import copy
import hashlib
import shutil

import pytest

from deploytools.package_function import build
from generator.diff import packages
from generator.diff.report import diff_templates

CODE = "functions/video_jobs.zip"  # one hash-pinned requirement (redis-py): built in seconds


def function(code: object) -> dict:
    return {"Resources": {"Function": {"Type": "AWS::Lambda::Function",
                                       "Properties": {"Code": code, "Handler": "api.lambda_handler"}}}}


@pytest.fixture(scope="module")
def package_md5(tmp_path_factory) -> str:
    """The key `package` gives the zip deploy.sh builds from generator/functions/video_jobs/."""
    zip_file = build(packages.FUNCTIONS / "video_jobs", tmp_path_factory.mktemp("zip") / "video_jobs.zip")
    return hashlib.md5(zip_file.read_bytes(), usedforsecurity=False).hexdigest()


def changed(old: dict, new: dict) -> list[str]:
    report = diff_templates(old, new)
    return [f"{s.key} {r.logical_id}" for s in report.stacks for r in s.resources]


def test_the_package_deployed_from_these_sources_is_no_change(package_md5):
    new = {"dev/jobs.json": function(CODE)}
    old = {"dev/jobs.json": function({"S3Bucket": "artifacts", "S3Key": f"video-pipeline-dev/{package_md5}"})}
    assert changed(copy.deepcopy(old), new) == ["dev/jobs.json Function"], "compared as they are: a false change"
    assert packages.restore_local_code(old, new) == []
    assert changed(old, new) == []


def test_a_package_of_other_sources_is_a_change_of_its_code(package_md5):
    new = {"dev/jobs.json": function(CODE)}
    other = "0" * 32
    old = {"dev/jobs.json": function({"S3Bucket": "artifacts", "S3Key": f"video-pipeline-dev/{other}"})}
    assert packages.restore_local_code(old, new) == []
    assert old["dev/jobs.json"]["Resources"]["Function"]["Properties"]["Code"]["S3Key"].endswith(other)
    assert changed(old, new) == ["dev/jobs.json Function"]


def test_a_package_that_cannot_be_built_here_is_named_and_stays_a_change(monkeypatch, tmp_path):
    source = tmp_path / "functions" / "video_jobs"
    shutil.copytree(packages.FUNCTIONS / "video_jobs", source)
    (source / "requirements.txt").write_text("no-such-package==1.0 --hash=sha256:" + "0" * 64 + "\n")
    monkeypatch.setattr(packages, "FUNCTIONS", tmp_path / "functions")
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # fails at once, network or not
    new = {"dev/jobs.json": function(CODE)}
    old = {"dev/jobs.json": function({"S3Bucket": "artifacts", "S3Key": "video-pipeline-dev/abc"})}
    [note] = packages.restore_local_code(old, new)
    assert note.startswith(f"{CODE}: not compared with the deployed package") and changed(old, new)


@pytest.mark.parametrize("code", ["s3://bucket/key.zip", "functions/../x.zip", "functions/x.tar", {"ZipFile": "x"}])
def test_code_that_is_not_a_local_zip_of_deploy_sh_is_left_as_it_is(code):
    new = {"dev/jobs.json": function(code)}
    old = {"dev/jobs.json": function({"S3Bucket": "artifacts", "S3Key": "k"})}
    before = copy.deepcopy(old)
    assert packages.restore_local_code(old, new) == [] and old == before
