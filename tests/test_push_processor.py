"""deploytools.push_processor and `./deploy.sh --push-processor` (issue #23), with a stand-in `docker` on PATH.

The stand-in records every call (argv and stdin) and answers `inspect` with the digest a registry would have
returned; ECR is moto's. A real build and push are not exercised here (docs/known-gaps.md).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import boto3
import pytest

from deploytools import bootstrap, push_processor
from generator import errors, names, parent

REPO = Path(__file__).resolve().parent.parent
REGION = "ap-northeast-1"
REPOSITORY = f"123456789012.dkr.ecr.{REGION}.amazonaws.com/{names.processor_repository()}"
DIGEST = "sha256:" + "ab" * 32

STAND_IN_DOCKER = textwrap.dedent(f"""\
    #!{sys.executable}
    import json, os, sys
    stdin = sys.stdin.read() if "--password-stdin" in sys.argv else None
    with open(os.environ["DOCKER_CALLS"], "a") as log:
        log.write(json.dumps({{"argv": sys.argv[1:], "stdin": stdin}}) + "\\n")
    if sys.argv[1] == os.environ.get("DOCKER_FAILS"):
        print("stand-in docker: " + sys.argv[1] + " failed", file=sys.stderr)
        sys.exit(1)
    if sys.argv[1] == "version":
        print("28.2.2")
    if sys.argv[1] == "inspect":
        print(json.dumps([sys.argv[-1].rsplit(":", 1)[0] + "@{DIGEST}"]))
    """)


@pytest.fixture
def docker_calls(tmp_path, monkeypatch) -> Path:
    """A stand-in docker first on PATH; returns the file its calls are recorded in."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(STAND_IN_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    log = tmp_path / "docker-calls.jsonl"
    log.touch()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("DOCKER_CALLS", str(log))
    return log


def calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.fixture
def context(tmp_path) -> Path:
    """A committed build context (a git repository of its own), as processor/ is in a clean checkout."""
    ctx = tmp_path / "processor"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\n")
    git = ["git", "-C", str(ctx), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "processor"], check=True)
    return ctx


def head(ctx: Path) -> str:
    return subprocess.run(["git", "-C", str(ctx), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()


@pytest.fixture
def acct(moto_account):
    bootstrap.ensure_processor_repository(moto_account)
    return moto_account


def test_builds_the_commit_logs_in_on_stdin_pushes_and_names_the_image_by_digest(acct, context, docker_calls):
    image = push_processor.push(acct, context, say=lambda _line: None)
    commit = head(context)
    # The digest the registry returned, in the only form prod's ProcessorImage parameter accepts.
    assert image == f"{REPOSITORY}@{DIGEST}"
    assert re.match(parent.DIGEST_ONLY, image)
    argvs = [c["argv"] for c in calls(docker_calls)]
    assert argvs == [
        ["build", "-t", f"{REPOSITORY}:{commit}", str(context)],
        ["login", "--username", "AWS", "--password-stdin", f"https://{REPOSITORY.split('/')[0]}"],
        ["push", f"{REPOSITORY}:{commit}"],
        ["inspect", "--format", "{{json .RepoDigests}}", f"{REPOSITORY}:{commit}"],
    ]
    # ECR's password reaches docker on stdin only, never in its argv (which `ps` shows to every user).
    [login] = [c for c in calls(docker_calls) if c["argv"][0] == "login"]
    assert login["stdin"] and all(login["stdin"] not in arg for argv in argvs for arg in argv)


def test_a_commit_already_pushed_is_not_rebuilt_and_keeps_the_registrys_digest(acct, context, docker_calls):
    # The repository's tags are immutable: a push of the same tag would be refused, and its content is the commit's.
    ecr = boto3.client("ecr", region_name=REGION)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                           "config": {"digest": "sha256:" + "cd" * 32, "size": 1,
                                      "mediaType": "application/vnd.docker.container.image.v1+json"}, "layers": []})
    pushed = ecr.put_image(repositoryName=names.processor_repository(), imageManifest=manifest,
                           imageTag=head(context))["image"]["imageId"]["imageDigest"]
    assert push_processor.push(acct, context, say=lambda _line: None) == f"{REPOSITORY}@{pushed}"
    assert calls(docker_calls) == []


def test_uncommitted_changes_in_the_context_are_refused_before_docker_runs(acct, context, docker_calls):
    (context / "Dockerfile").write_text("FROM scratch\nUSER 1000:1000\n")
    with pytest.raises(errors.InputError, match=r"uncommitted changes .*Dockerfile.*commit them first"):
        push_processor.push(acct, context)
    assert calls(docker_calls) == []


def test_no_repository_says_to_bootstrap(moto_account, context, docker_calls):
    with pytest.raises(errors.AwsError, match=r"video-processing/processor does not exist .* ./deploy.sh --bootstrap"):
        push_processor.push(moto_account, context)
    assert calls(docker_calls) == []


def test_a_failed_build_pushes_nothing_and_exits_1_with_one_line(acct, context, docker_calls, monkeypatch, tmp_path,
                                                                 capsys):
    monkeypatch.setenv("DOCKER_FAILS", "build")
    out = tmp_path / "image"
    assert push_processor.main(["--region", REGION, "--out", str(out), "--context", str(context)]) == 1
    assert [c["argv"][0] for c in calls(docker_calls)] == ["version", "build"]
    assert not out.exists()
    assert capsys.readouterr().err.splitlines()[-1] == "error: docker build failed (exit 1, its output above)"


def test_a_docker_without_its_daemon_is_refused_in_one_line(acct, context, docker_calls, monkeypatch, tmp_path,
                                                            capsys):
    monkeypatch.setenv("DOCKER_FAILS", "version")
    assert push_processor.main(["--region", REGION, "--out", str(tmp_path / "image"),
                                "--context", str(context)]) == errors.EXIT_USAGE
    [line] = capsys.readouterr().err.splitlines()
    assert "its daemon does not answer" in line
    assert [c["argv"][0] for c in calls(docker_calls)] == ["version"]


def path_without_docker() -> str:
    dirs = [d for d in os.environ["PATH"].split(os.pathsep) if d and not (Path(d) / "docker").exists()]
    return os.pathsep.join(dirs)


def test_deploy_sh_without_docker_says_so_in_one_line_and_exits_2(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(PATH=path_without_docker(), BUILD_DIR=str(tmp_path / "build"))
    done = subprocess.run(["./deploy.sh", "--push-processor", "--env", "prod"], cwd=REPO, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("deploy.sh: error: --push-processor needs docker, and there is none on PATH")
    assert done.stdout == ""  # refused before credentials, templates or anything else


@pytest.mark.parametrize("args, says", [
    (["--local"], "does not go with --local"),
    (["--delete"], "does not go with --bootstrap, --remove-retained or --delete"),
    (["--param", "ProcessorImage=repo:1"], "sets ProcessorImage itself"),
])
def test_deploy_sh_refuses_what_does_not_go_with_push_processor(tmp_path, args, says, docker_calls):
    done = subprocess.run(["./deploy.sh", "--push-processor", *args], cwd=REPO, stdin=subprocess.DEVNULL,
                          env={**os.environ, "BUILD_DIR": str(tmp_path / "build")},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert says in line
    assert calls(docker_calls) == []
