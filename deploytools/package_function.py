"""Builds a Lambda function's deployment package as a reproducible zip: the same sources and pinned
requirements give a byte-identical file on every machine and every run (so `aws cloudformation package`
uploads it under the same key and an unchanged function is no change).

    python -m deploytools.package_function SOURCE_DIR OUT_ZIP

SOURCE_DIR holds the handler, its data files and a `requirements.txt` of exact, hash-checked pins; they are
installed with pip (--require-hashes --no-deps --only-binary=:all: --no-compile) into a scratch directory, then
every file is written in sorted order with a fixed timestamp and permissions. `requirements.txt` itself, caches
and bytecode are left out. A `requirements.txt` listing no requirement (only comments, blank lines or pip options)
says the function needs nothing beyond the runtime: pip is not run at all.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from generator.errors import PackageError, PipelineError

FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can hold
LEFT_OUT = ("__pycache__", ".pyc", "requirements.txt")


def files(root: Path) -> list[tuple[str, Path]]:
    """(name in the zip, path) of every file under root, sorted by name; caches and bytecode left out."""
    found = []
    for path in root.rglob("*"):
        name = path.relative_to(root).as_posix()
        if path.is_file() and not any(part in LEFT_OUT or part.endswith(".pyc") for part in name.split("/")):
            found.append((name, path))
    return sorted(found)


# pip options that bring requirements of their own: with one of these, pip runs (and checks the hashes).
REQUIREMENT_OPTIONS = ("-r", "--requirement", "-e", "--editable")


def lists_requirements(requirements: Path) -> bool:
    """Whether the file names a requirement: a line that is neither blank, nor a comment (`#` at its start or
    after a space, as pip reads it), nor a pip option other than those bringing requirements (`-r`, `-e`)."""
    for line in requirements.read_text(encoding="utf-8").splitlines():
        text = re.sub(r"(^|\s)#.*$", "", line).strip()
        if text and (not text.startswith("-") or text.startswith(REQUIREMENT_OPTIONS)):
            return True
    return False


def install_requirements(requirements: Path, target: Path) -> None:
    command = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--quiet",
               "--require-hashes", "--no-deps", "--only-binary=:all:", "--no-compile", "--target", str(target),
               "-r", str(requirements)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise PackageError(f"installing {requirements} failed: {last}")


def write_zip(entries: list[tuple[str, Path]], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, path in entries:
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (0o100644 & 0xFFFF) << 16  # a regular file, rw-r--r--, whatever it was on disk
            info.create_system = 3  # Unix, on every platform
            archive.writestr(info, path.read_bytes())
    os.replace(partial, out)


def build(source: Path, out: Path) -> Path:
    if not (source / "requirements.txt").is_file():
        raise PackageError(f"{source}: no requirements.txt")
    with tempfile.TemporaryDirectory(prefix="function-deps-") as scratch:
        deps = Path(scratch)
        if lists_requirements(source / "requirements.txt"):
            install_requirements(source / "requirements.txt", deps)
        # The function's own files win over a dependency of the same name.
        entries = dict(files(deps))
        entries.update(dict(files(source)))
        write_zip(sorted(entries.items()), out)
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m deploytools.package_function SOURCE_DIR OUT_ZIP", file=sys.stderr)
        return 2
    try:
        build(Path(argv[0]), Path(argv[1]))
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
