"""Command line: the only place in the generator that touches files.

    python -m generator [--env NAME ...] [--out DIR] [--check] [--config FILE]
    python -m generator diff [--base REV | --stack NAME] ...   (see generator/diff/cli.py)
    python -m generator capacity [--env NAME ...] [--minutes M] [--config FILE]   (see generator/capacity.py)
    python -m generator cost [--env NAME ...] [--videos-per-month N] ...   (see generator/cost/cli.py)
    python -m generator rules [--templates DIR] [--list]   (see generator/rules/__init__.py)
    python -m generator environments
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path


def _stopped_while_loading(signum: int, frame: object) -> None:
    os.write(2, b"interrupted: python -m generator stopped while starting; nothing was written\n")
    os._exit(130)  # errors.EXIT_INTERRUPTED, not imported yet


if __name__ == "__main__":
    # The modules below take a quarter of a second to load: a SIGTERM or Ctrl-C meanwhile ends the run in one line
    # too (SIGTERM used to kill the process silently, exit 143; Ctrl-C printed a traceback). errors.run takes over
    # SIGTERM for the rest of the run; Ctrl-C is Python's KeyboardInterrupt again below, once they are loaded.
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _stopped_while_loading)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _stopped_while_loading)

import orjson  # noqa: E402 - after the handler above

from generator import config, errors  # noqa: E402
from generator.errors import EXIT_OK, EXIT_STALE, EXIT_USAGE  # noqa: E402, F401 - EXIT_USAGE for callers
from generator.render import render_environment  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "templates"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m generator",
        description="Generate the pipeline's CloudFormation templates: for each environment, "
                    "templates/<env>/main.json (the parent) and one <tier>.json per tier.",
        epilog="Exit status: 0 success; 1 --check found stale, missing or extra files, a stale generated block of "
               "docs/ or a rule finding; 2 bad input or an unwritable --out (one line on stderr, nothing replaced); "
               "70 internal error (a bug: the traceback is in a log file, see the message); 130 interrupted, Ctrl-C "
               "or SIGTERM (nothing half-written). "
               "Each --out/<env>/ holds only the generated *.json files: a directory holding anything else is "
               "refused, not replaced. "
               "Review a change: `python -m generator diff --help`. "
               "`python -m generator environments` prints each environment and its region (deploy.sh reads it). "
               "`python -m generator capacity --help`: each environment's capacity on paper.",
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

    def unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:  # json.loads would keep the last value silently
                raise config.ConfigError(f"invalid --config {path}: {config.shown(key)} appears twice in one object; "
                                         "accepted: each environment and each setting once")
            seen.add(key)
        return dict(pairs)

    try:
        return json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=unique_keys)
    except config.ConfigError:
        raise
    except OSError as e:
        raise config.ConfigError(f"invalid --config {path}: {e.strerror}; accepted: a readable JSON file") from None
    except RecursionError:
        raise config.ConfigError(f"invalid --config {path}: nested too deeply; accepted: a JSON object of "
                                 "environments, each an object of settings") from None
    except ValueError as e:
        raise config.ConfigError(f"invalid --config {path}: {e}; accepted: a JSON object") from None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["diff"]:
        from generator.diff import cli as diff_cli
        return errors.run(diff_cli.main, argv[1:], "python -m generator diff",
                          interrupted="it changes nothing; a drift detection it started finishes on its own in "
                                      "CloudFormation")
    if argv[:1] == ["rules"]:
        from generator import rules
        return errors.run(rules.command, argv[1:], "python -m generator rules", interrupted="it changes nothing")
    if argv[:1] == ["capacity"]:
        return errors.run(capacity_command, argv[1:], "python -m generator capacity", interrupted="it changes nothing")
    if argv[:1] == ["cost"]:
        from generator.cost import cli as cost_cli
        return errors.run(cost_cli.main, argv[1:], "python -m generator cost",
                          interrupted="it changes nothing (a --refresh-prices writes the snapshot only when done)")
    if argv[:1] == ["environments"]:  # for deploy.sh: one `<name>\t<region>` line per environment
        print(config.environments_table(), end="")
        return EXIT_OK
    return errors.run(generate, argv, "python -m generator",
                      interrupted="nothing is half-written (every environment is replaced, or none): run it again")


def generate(argv: list[str]) -> int:
    args = parse_args(argv)
    environments = config.with_overrides(load_overrides(args.config)) if args.config else config.ENVIRONMENTS
    wanted = {config.get(n).name for n in args.env} if args.env else set(environments)
    envs = [cfg for name, cfg in environments.items() if name in wanted]
    # Build everything before touching the disk: any error leaves the output directory as it was.
    rendered = {cfg.name: render_environment(cfg) for cfg in envs}
    if args.check:
        # Without --env the whole directory is compared: an entry beside the environments is extra too.
        stale = check(args.out, rendered, whole_directory=not args.env)
        from generator import rules  # the security and reliability rules, over what is generated

        broken = rules.check_rendered(rendered)
        return max(stale, broken, docs_blocks(args, rendered))
    # SIGTERM ends a run like Ctrl-C (errors.run): the write below cleans up, errors.run reports one line.
    write(args.out, rendered)
    print_summary(rendered)
    return docs_blocks(args, rendered)


def docs_blocks(args: argparse.Namespace, rendered: dict[str, dict[str, str]]) -> int:
    """The generated blocks of docs/ follow a run over the committed templates (generator/docs.py)."""
    from generator import docs

    return docs.follow(rendered, check=args.check, out=args.out, whole=not args.env and not args.config)


def parse_capacity_args(argv: list[str]) -> argparse.Namespace:
    from generator import capacity

    p = argparse.ArgumentParser(
        prog="python -m generator capacity",
        description="Capacity on paper. Prints, for each environment: max_concurrent_videos (one Fargate task per "
                    "video; the rest wait QUEUED), the vCPU and memory they need against the Fargate vCPU quota "
                    "assumed in generator/config.py (fargate_vcpu_quota) and a new account's default, the "
                    "throughput per hour at M minutes per video, the API, StartExecution, RunTask and task launch "
                    "rates at full load against their limits, the database connections against the instance "
                    "class's default max_connections, and which limit binds first; then every AWS fact used, with "
                    "the documentation page it comes from (generator/aws_facts.py), and our own assumptions.",
        epilog="Exit status: 0 printed; 2 bad --minutes, --env or --config (one line on stderr). "
               "Writes nothing; the same settings always print the same text.",
    )
    p.add_argument("--env", action="append", metavar="NAME",
                   help=f"limit to this environment (repeatable; default: all of {', '.join(config.ENVIRONMENTS)})")
    p.add_argument("--minutes", metavar="M",
                   help=f"minutes one video takes: a number from {capacity.MIN_MINUTES:g} to {capacity.MAX_MINUTES}, "
                        "such as 2.5 (default: per environment, a typical source at the measured encode speed on "
                        "its task, generator/encode_speed.py)")
    p.add_argument("--config", type=Path, metavar="FILE",
                   help='JSON overrides per environment, e.g. {"prod": {"max_concurrent_videos": 60}}, validated '
                        "like `python -m generator --config`: what if")
    return p.parse_args(argv)


def capacity_command(argv: list[str]) -> int:
    from generator import capacity

    args = parse_capacity_args(argv)
    minutes = None if args.minutes is None else capacity.parse_minutes(args.minutes)
    environments = config.with_overrides(load_overrides(args.config)) if args.config else config.ENVIRONMENTS
    wanted = {config.get(n).name for n in args.env} if args.env else set(environments)
    print(capacity.render([capacity.capacity(cfg, minutes) for name, cfg in environments.items() if name in wanted]),
          end="")
    return EXIT_OK


def check(out: Path, rendered: dict[str, dict[str, str]], whole_directory: bool = False) -> int:
    problems = []
    if whole_directory and out.is_dir():
        for p in sorted(out.iterdir()):
            if p.name.startswith(TRANSACTION_PREFIX):
                problems.append(f"extra:   {p} (left by an interrupted run: `python -m generator` recovers it)")
            elif p.name not in rendered:
                problems.append(f"extra:   {p}")
    for env, files in rendered.items():
        env_dir = out / env
        entries = {p.name: p for p in env_dir.iterdir()} if env_dir.is_dir() else {}
        for name in sorted(files.keys() | entries.keys()):
            path = env_dir / name
            if name not in entries:
                problems.append(f"missing: {path}")
            elif name not in files or not _is_plain_file(path):
                problems.append(f"extra:   {path}")  # a subdirectory too: nothing but the templates belongs here
            elif path.read_bytes() != files[name].encode("utf-8"):
                problems.append(f"stale:   {path}")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        print(f"{len(problems)} file(s) differ from the generator's output; run `python -m generator` (and remove "
              "what is extra), then commit templates/.", file=sys.stderr)
        return EXIT_STALE
    print(f"templates up to date: {', '.join(rendered)} in {out}")
    return EXIT_OK


# ------------------------------------------------------------------------------------------------ writing
#
# The generator owns the top-level *.json files of each <out>/<env>/ it writes, nothing else: a directory
# holding anything more is refused, not replaced. All requested environments are replaced together, through
# one transaction directory <out>/.generator-txn-<pid>/:
#   new/<env>/   every file, written first (a full disk fails here, before anything is replaced);
#   complete     marker: from here on the run rolls forward;
#   old/<env>/   each replaced directory, moved aside by a rename, deleted at the end.
# Renames are not interrupted (SIGINT/SIGTERM are blocked for their duration). A run killed outright leaves the
# transaction directory behind; the next run finishes it (marker present) or discards it (absent) first.

TRANSACTION_PREFIX = ".generator-txn-"
COMPLETE = "complete"


def _is_plain_file(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()


def foreign_entries(env_dir: Path) -> list[Path]:
    """What in an environment directory the generator did not write (anything but top-level *.json files)."""
    if not env_dir.is_dir() or env_dir.is_symlink():
        return [env_dir] if env_dir.exists() or env_dir.is_symlink() else []
    return sorted(p for p in env_dir.iterdir() if not (_is_plain_file(p) and p.suffix == ".json"))


def write(out: Path, rendered: dict[str, dict[str, str]]) -> None:
    """Replace every requested environment directory, or none of them."""
    if out.exists() and not out.is_dir():
        raise errors.InputError(f"--out {out} is not a directory; accepted: a directory (created when missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise errors.InputError(f"cannot create --out {out}: {e.strerror}; accepted: a writable directory") from None
    try:
        recover(out)
    except OSError as e:
        raise errors.InputError(f"cannot recover what an interrupted run left in {out}: {e.strerror}") from None
    for env in rendered:
        foreign = foreign_entries(out / env)
        if foreign:
            raise errors.InputError(
                f"{foreign[0]} was not written by the generator; refusing to replace {out / env}: "
                "move it out, or choose another --out")
    txn = out / f"{TRANSACTION_PREFIX}{os.getpid()}"
    try:
        for env, files in rendered.items():
            staged = txn / "new" / env
            staged.mkdir(parents=True)
            for name, text in files.items():
                (staged / name).write_bytes(text.encode("utf-8"))
                os.chmod(staged / name, 0o644)
            os.chmod(staged, 0o755)
        (txn / "old").mkdir()
        (txn / COMPLETE).touch()
    except OSError as e:
        raise errors.InputError(f"cannot write {e.filename or out}: {e.strerror}; nothing was replaced") from None
    finally:
        if not (txn / COMPLETE).exists():
            shutil.rmtree(txn, ignore_errors=True)
    try:
        with _signals_blocked():
            _commit(out, txn)
    except OSError as e:
        raise errors.InputError(f"cannot replace {e.filename or out}: {e.strerror}; the next run of the generator "
                                f"finishes the replacement ({txn} holds it)") from None


def _commit(out: Path, txn: Path) -> None:
    """Move each staged environment into place (old one aside); idempotent, so a later run can finish it."""
    for staged in sorted((txn / "new").iterdir()):
        target, aside = out / staged.name, txn / "old" / staged.name
        if target.exists() and not aside.exists():
            target.rename(aside)
        staged.rename(target)
    _remove_transaction(txn)


def _remove_transaction(txn: Path) -> None:
    """Delete a committed transaction. The marker goes first: a run killed here leaves a transaction that the next
    one discards, nothing it would try to commit."""
    with contextlib.suppress(FileNotFoundError):
        (txn / COMPLETE).unlink()
    shutil.rmtree(txn)


def recover(out: Path) -> None:
    """Finish or discard what an earlier run, killed mid-write, left in `out`."""
    for txn in sorted(out.glob(f"{TRANSACTION_PREFIX}*")):
        pid = txn.name[len(TRANSACTION_PREFIX):]
        if pid.isdigit() and _alive(int(pid)):
            continue  # another run is writing right now
        if (txn / COMPLETE).exists():
            _commit(out, txn)
        else:
            shutil.rmtree(txn, ignore_errors=True)
    # Leftovers of the earlier per-environment scheme (.<env>.new-*, .<env>.old).
    for leftover in sorted(out.glob(".*.new-*")):
        shutil.rmtree(leftover, ignore_errors=True)
    for old in sorted(out.glob(".*.old")):
        env = out / old.name[1:-len(".old")]
        if env.exists():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.rename(env)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def _signals_blocked() -> Iterator[None]:
    signals = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def print_summary(rendered: dict[str, dict[str, str]]) -> None:
    rows = [("environment", "template", "resources", "bytes")]
    for env, files in rendered.items():
        for name, text in files.items():
            rows.append((env, name, str(len(orjson.loads(text).get("Resources", {}))), str(len(text.encode()))))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))


if __name__ == "__main__":
    if signal.getsignal(signal.SIGINT) is _stopped_while_loading:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main())
