"""Build the processor image, push it to the account's repository and name it by digest: `./deploy.sh --push-processor`.

    python -m deploytools.push_processor --region R --out FILE [--context processor]

1. the commit: the image is tagged with `git rev-parse HEAD`; uncommitted changes under the build context are
   refused (an immutable tag must name what the commit holds);
2. the repository: the bootstrap's (`./deploy.sh --bootstrap`), one per account and region;
3. a tag already pushed (the same commit again, or another environment's deploy of it) is not rebuilt: the
   repository's tags are immutable, so its digest is the commit's image;
4. otherwise `docker build -t <repository>:<commit> <context>`, `docker login` with ECR's token (what
   `aws ecr get-login-password` prints, on docker's stdin), `docker push`, and the digest the registry returned
   (`docker inspect`'s RepoDigests);
5. writes `<repository>@sha256:<digest>` to FILE, for `--param ProcessorImage=` (prod accepts nothing else).

docker's own output goes to stderr. Exit status: 0 pushed (or already there), 1 docker failed (its output above),
2 no docker, a dirty build context, no repository, an AWS error (one line), 130 interrupted.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from deploytools.bootstrap import Account, error_code
from generator import errors, names

ROOT = Path(__file__).resolve().parent.parent
DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")


class DockerFailed(errors.PipelineError):
    """A docker command failed; its output is above. Exit 1 (a step failed), not 2 (nothing was wrong to start)."""


def commit_of(context: Path) -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(context), *args], capture_output=True, text=True)
        if done.returncode != 0:
            raise errors.GitError(f"git {' '.join(args)} failed: {errors.one_line(done.stderr)}")
        return done.stdout.strip()
    dirty = git("status", "--porcelain", "--", ".")
    if dirty:
        raise errors.InputError(f"{context} has uncommitted changes ({dirty.splitlines()[0].strip()}, ...): commit "
                                "them first; the image is tagged with the commit, and its tags cannot be moved")
    return git("rev-parse", "HEAD")


def repository_uri(acct: Account) -> str:
    name = names.processor_repository()
    try:
        return acct.client("ecr").describe_repositories(repositoryNames=[name])["repositories"][0]["repositoryUri"]
    except Exception as e:
        if error_code(e) != "RepositoryNotFoundException":
            raise
    raise errors.AwsError(f"the ECR repository {name} does not exist in {acct.region}: run ./deploy.sh --bootstrap "
                          "(once per account and region)")


def pushed_digest(acct: Account, tag: str) -> str | None:
    try:
        found = acct.client("ecr").describe_images(repositoryName=names.processor_repository(),
                                                   imageIds=[{"imageTag": tag}])["imageDetails"]
    except Exception as e:
        if error_code(e) != "ImageNotFoundException":
            raise
        return None
    return found[0]["imageDigest"] if found else None


def docker(*args: str, stdin: str | None = None, capture: bool = False) -> str:
    done = subprocess.run(["docker", *args], input=stdin, text=True,
                          stdout=subprocess.PIPE if capture else 2)  # 2: stdout is for the result
    if done.returncode != 0:
        raise DockerFailed(f"docker {args[0]} failed (exit {done.returncode}, its output above)")
    return done.stdout or ""


def login(acct: Account) -> None:
    # ECR's token is base64("AWS:<password>"), valid 12 hours; the password goes on stdin, never in argv.
    # https://docs.aws.amazon.com/AmazonECR/latest/userguide/registry_auth.html
    [data] = acct.client("ecr").get_authorization_token()["authorizationData"]
    user, password = base64.b64decode(data["authorizationToken"]).decode().split(":", 1)
    docker("login", "--username", user, "--password-stdin", data["proxyEndpoint"], stdin=password)


def digest_from_docker(image: str, repository: str) -> str:
    repo_digests = json.loads(docker("inspect", "--format", "{{json .RepoDigests}}", image, capture=True) or "[]")
    for ref in repo_digests or []:
        name, _, digest = ref.partition("@")
        if name == repository and DIGEST.match(digest):
            return digest
    raise DockerFailed(f"docker inspect {image} names no digest in {repository} after the push: {repo_digests}")


def push(acct: Account, context: Path, say=lambda line: print(line, file=sys.stderr)) -> str:
    """The pushed image's reference by digest: `<repository>@sha256:<hex>`."""
    commit = commit_of(context)
    repository = repository_uri(acct)
    digest = pushed_digest(acct, commit)
    if digest:
        say(f"push-processor: {repository}:{commit} is already pushed ({digest}): not rebuilt")
    else:
        image = f"{repository}:{commit}"
        say(f"push-processor: building {image} from {context}/")
        docker("build", "-t", image, str(context))
        login(acct)
        docker("push", image)
        digest = digest_from_docker(image, repository)
        say(f"push-processor: pushed {image} ({digest})")
    return f"{repository}@{digest}"


def _main(argv: list[str]) -> int:
    from deploytools.cfn import aws_errors_as_pipeline_errors

    p = argparse.ArgumentParser(prog="python -m deploytools.push_processor", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--region", help="default: the session's (AWS_REGION, the profile)")
    p.add_argument("--out", required=True, type=Path, help="where to write the image reference by digest")
    p.add_argument("--context", type=Path, default=ROOT / "processor", help="the build context (processor/)")
    a = p.parse_args(argv)
    if shutil.which("docker") is None:
        raise errors.InputError("--push-processor needs docker, and there is none on PATH: install Docker (or build "
                                "and push elsewhere, then deploy with --param ProcessorImage=<repository>@sha256:...)")
    try:  # a client without its daemon (a CI runner, a container) fails only at the build otherwise
        daemon = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True,
                                text=True, timeout=30)
        answered = daemon.returncode == 0
    except subprocess.TimeoutExpired:
        answered = False
    if not answered:
        raise errors.InputError("docker is installed but its daemon does not answer (see `docker info`): start it, "
                                "then run ./deploy.sh --push-processor again")

    def go(a: argparse.Namespace) -> int:
        try:
            a.out.write_text(push(Account(a.region), a.context) + "\n")
        except DockerFailed as e:
            print(f"error: {e}", file=sys.stderr)
            return errors.EXIT_STALE
        return errors.EXIT_OK
    return aws_errors_as_pipeline_errors(go, a)


def main(argv: list[str] | None = None) -> int:
    return errors.run(_main, sys.argv[1:] if argv is None else argv, "deploytools.push_processor",
                      interrupted="an image may be built or partly pushed, which is harmless: run the same "
                                  "./deploy.sh --push-processor again")


if __name__ == "__main__":
    sys.exit(main())
