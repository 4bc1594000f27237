"""Command line: the only place in the generator that touches files.

    python -m generator [--env NAME ...] [--out DIR] [--check] [--config FILE]
    python -m generator diff [--base REV | --stack NAME] ...   (see generator/diff_cli.py)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from generator import config
from generator.render import LimitError, render_environment

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "templates"

EXIT_OK, EXIT_STALE, EXIT_USAGE = 0, 1, 2


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m generator",
        description="Generate the pipeline's CloudFormation templates: for each environment, "
                    "templates/<env>/main.json (the parent) and one <tier>.json per tier.",
        epilog="Exit status: 0 success; 1 --check found stale, missing or extra files; "
               "2 bad input (nothing written). "
               "Review a change: `python -m generator diff --help`.",
    )
    p.add_argument("--env", action="append", metavar="NAME",
                   help=f"limit to this environment (repeatable; default: all of {', '.join(config.ENVIRONMENTS)})")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="DIR",
                   help="output directory (default: the repository's templates/)")
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 listing every stale, missing or extra file if DIR differs "
                        "from what would be generated, 0 if it matches")
    p.add_argument("--config", type=Path, metavar="FILE",
                   help='JSON overrides per environment, e.g. {"dev": {"az_count": 3}}, for what-if generation: '
                        "validated like the built-in settings (a bad value exits 2 naming the field and what is "
                        "accepted); the committed templates use none")
    return p.parse_args(argv)


def load_overrides(path: Path) -> object:
    """The --config file's JSON (a bad file is bad input like a bad value: ConfigError, one line)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise config.ConfigError(f"invalid --config {path}: {e.strerror}; accepted: a readable JSON file") from None
    except ValueError as e:
        raise config.ConfigError(f"invalid --config {path}: {e}; accepted: a JSON object") from None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["diff"]:
        from generator import diff_cli
        return diff_cli.main(argv[1:])
    if argv[:1] == ["environments"]:  # for deploy.sh: one `<name>\t<region>` line per environment
        print(config.environments_table(), end="")
        return EXIT_OK
    args = parse_args(argv)
    try:
        environments = config.with_overrides(load_overrides(args.config)) if args.config else config.ENVIRONMENTS
        wanted = {config.get(n).name for n in args.env} if args.env else set(environments)
        envs = [cfg for name, cfg in environments.items() if name in wanted]
        # Build everything before touching the disk: any error leaves the output directory as it was.
        rendered = {cfg.name: render_environment(cfg) for cfg in envs}
    except (config.ConfigError, LimitError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    if args.check:
        # Without --env the whole directory is compared: an entry beside the environments is extra too.
        return check(args.out, rendered, whole_directory=not args.env)
    write(args.out, rendered)
    print_summary(rendered)
    return EXIT_OK


def check(out: Path, rendered: dict[str, dict[str, str]], whole_directory: bool = False) -> int:
    problems = []
    if whole_directory and out.is_dir():
        problems += [f"extra:   {p}" for p in sorted(out.iterdir()) if p.name not in rendered]
    for env, files in rendered.items():
        env_dir = out / env
        on_disk = {p.name for p in env_dir.iterdir() if p.is_file()} if env_dir.is_dir() else set()
        for name in sorted(files.keys() | on_disk):
            path = env_dir / name
            if name not in on_disk:
                problems.append(f"missing: {path}")
            elif name not in files:
                problems.append(f"extra:   {path}")
            elif path.read_text(encoding="utf-8") != files[name]:
                problems.append(f"stale:   {path}")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        print(f"{len(problems)} file(s) differ from the generator's output; run `python -m generator` (and remove "
              "what is extra), then commit templates/.", file=sys.stderr)
        return EXIT_STALE
    print(f"templates up to date: {', '.join(rendered)} in {out}")
    return EXIT_OK


def write(out: Path, rendered: dict[str, dict[str, str]]) -> None:
    """Replace each environment directory whole, through a sibling temporary directory and renames."""
    out.mkdir(parents=True, exist_ok=True)
    for env, files in rendered.items():
        staging = Path(tempfile.mkdtemp(prefix=f".{env}.new-", dir=out))
        for name, text in files.items():
            (staging / name).write_text(text, encoding="utf-8")
            os.chmod(staging / name, 0o644)
        os.chmod(staging, 0o755)
        target, old = out / env, out / f".{env}.old"
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            target.rename(old)
        staging.rename(target)
        shutil.rmtree(old, ignore_errors=True)


def print_summary(rendered: dict[str, dict[str, str]]) -> None:
    import json

    rows = [("environment", "template", "resources", "bytes")]
    for env, files in rendered.items():
        for name, text in files.items():
            rows.append((env, name, str(len(json.loads(text).get("Resources", {}))), str(len(text.encode()))))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))


if __name__ == "__main__":
    sys.exit(main())
