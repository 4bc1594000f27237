"""What `aws cloudformation package` made of a function's local code, so that `diff --stack` compares like with like.

A generated template names a function's code as a local zip (`"Code": "functions/<name>.zip"`). deploy.sh builds
that zip from generator/functions/<name>/ (deploytools.package_function: reproducible, the same sources give the
same bytes), and `package` uploads it under `<prefix>/<checksum of the zip>` and writes
`"Code": {"S3Bucket": ..., "S3Key": ...}` into the template it deploys. Compared as they are, every packaged
function would show as changed after every deploy. So the zip is built here as deploy.sh builds it: when the
deployed key names its checksum, the deployed code is this code and its Code is shown as the local path again;
otherwise the S3 location stays, and the diff shows the code as changed (it is).
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from generator import errors

FUNCTION_TYPE = "AWS::Lambda::Function"
FUNCTIONS = Path(__file__).resolve().parents[1] / "functions"
LOCAL_CODE_PREFIX = "functions/"  # deploy.sh's convention: functions/<name>.zip <- generator/functions/<name>/


def checksums(zip_file: Path) -> set[str]:
    """The names `package` can give the upload: the zip's MD5, or its SHA-256 where MD5 is unavailable (FIPS)
    (awscli/customizations/s3uploader.py, S3Uploader.file_checksum)."""
    data = zip_file.read_bytes()
    return {hashlib.md5(data, usedforsecurity=False).hexdigest(), hashlib.sha256(data).hexdigest()}


def restore_local_code(old: dict[str, dict], new: dict[str, dict]) -> list[str]:
    """Give each deployed function (old) whose package is the one built now from the new side's local Code that
    local Code back. Returns a note per function whose package could not be built (its code stays compared as
    an S3 location against a path: shown as changed)."""
    notes: list[str] = []
    built: dict[str, set[str] | None] = {}
    with tempfile.TemporaryDirectory(prefix="diff-packages-") as scratch:
        for key, template in sorted(new.items()):
            deployed = (old.get(key) or {}).get("Resources") or {}
            for lid, resource in sorted((template.get("Resources") or {}).items()):
                local = local_zip((resource.get("Properties") or {}).get("Code"))
                there = (deployed.get(lid) or {}).get("Properties") or {}
                s3_key = there["Code"].get("S3Key") if isinstance(there.get("Code"), dict) else None
                if resource.get("Type") != FUNCTION_TYPE or local is None or not isinstance(s3_key, str):
                    continue
                if local not in built:
                    built[local] = _build(local, Path(scratch), notes)
                digests = built[local]
                if digests and s3_key.rsplit("/", 1)[-1] in digests:
                    there["Code"] = local
    return notes


def local_zip(code: object) -> str | None:
    """`code` when it names a function's zip the way deploy.sh builds it (functions/<name>.zip), else None."""
    name = code[len(LOCAL_CODE_PREFIX):] if isinstance(code, str) and code.startswith(LOCAL_CODE_PREFIX) else ""
    return code if isinstance(code, str) and name.endswith(".zip") and "/" not in name else None


def _build(local: str, scratch: Path, notes: list[str]) -> set[str] | None:
    from deploytools.package_function import build

    name = local[len(LOCAL_CODE_PREFIX):-len(".zip")]
    try:
        return checksums(build(FUNCTIONS / name, scratch / f"{name}.zip"))
    except errors.PipelineError as e:  # e.g. pip cannot reach its index: say so, compare the rest
        notes.append(f"{local}: not compared with the deployed package, it could not be built here "
                     f"({errors.one_line(e, 200)})")
        return None
