"""One error hierarchy and one set of exit codes for every entry point (generator, diff, deploy tools).

Everything a user can cause or meet (a bad setting, a quota, unwired contracts, a misused checkov skip,
git, AWS, a malformed template) is a `PipelineError`: its message is one line naming what is wrong and
how to fix it, and the entry point exits EXIT_USAGE. Anything else is a bug: `run` writes the traceback to
a log file and exits EXIT_INTERNAL, which no caller can mistake for "stale" (1) or "bad input" (2).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

EXIT_OK = 0
EXIT_STALE = 1  # generator --check: files differ; deploy: the deployment failed
EXIT_USAGE = 2  # a PipelineError: bad input or a problem of the user's environment, one line on stderr
EXIT_FAIL_ON = 3  # diff --fail-on matched (deploytools.cfn also uses 3 for "no changes" towards deploy.sh)
EXIT_INTERNAL = 70  # a bug (sysexits' EX_SOFTWARE): the traceback is in a log file
# SIGINT and SIGTERM alike: 128 + SIGINT, as shells report Ctrl-C. One code for "stopped on request, and the line
# says what state things are in"; a raw 143 (or 137) then means killed before it could say so.
EXIT_INTERRUPTED = 130

MAX_MESSAGE = 1000  # characters of a message shown (a 10 MB value must not be echoed whole)
LOG_DIR_VARIABLE = "PIPELINE_LOG_DIR"
DEFAULT_LOG_DIR = Path(__file__).resolve().parent.parent / "build" / "logs"


class PipelineError(Exception):
    """Base of every error a user can cause or meet; str() is the one line shown to them."""

    exit_code = EXIT_USAGE


class ConfigError(PipelineError, ValueError):
    """A setting is invalid; the message names the field and what is accepted."""


class LimitError(PipelineError, ValueError):
    """A generated template, or code inlined into one, exceeds an AWS quota."""


class WiringError(PipelineError, ValueError):
    """A child Parameter has no producing tier, or more than one."""


class SkipError(PipelineError, ValueError):
    """A checkov skip is misused: not a check id, or without a one-line reason."""


class PackageError(PipelineError):
    """A function's deployment package could not be built (its pinned dependencies, its files)."""


class GitError(PipelineError):
    """git is missing, the directory is not a repository, or a revision is unknown."""


class AwsError(PipelineError):
    """An AWS call failed: credentials, region, permissions, a missing stack."""


class TemplateError(PipelineError):
    """A template (in the work tree, at a git revision or deployed) is not valid JSON/YAML CloudFormation."""


class InputError(PipelineError, ValueError):
    """A command-line value is invalid (a parameter, a port, a bucket name, an output directory)."""


class Interrupted(PipelineError):
    """Ctrl-C or SIGTERM while something outside this process carries on; the message says its state."""

    exit_code = EXIT_INTERRUPTED


def one_line(text: object, limit: int = MAX_MESSAGE) -> str:
    """A message as one line of at most `limit` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def log_dir() -> Path:
    """Where internal errors leave their traceback: $PIPELINE_LOG_DIR, else build/logs, else the temp dir."""
    import tempfile  # here and below: only a bug pays for these imports, not every run

    for candidate in (os.environ.get(LOG_DIR_VARIABLE), DEFAULT_LOG_DIR, Path(tempfile.gettempdir())):
        if not candidate:
            continue
        path = Path(candidate)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(path, os.W_OK):
            return path
    return Path(tempfile.gettempdir())


def write_traceback(program: str) -> Path:
    """Write the exception being handled to a new log file and return its path."""
    import datetime
    import tempfile
    import traceback

    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S")
    fd, name = tempfile.mkstemp(prefix=f"{program.replace(' ', '-')}-{stamp}-", suffix=".log", dir=log_dir())
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(traceback.format_exc())
    return Path(name)


def _terminated(signum: int, frame: object) -> None:
    """SIGTERM ends a run like Ctrl-C (its cleanup runs, one line says the state); a second one is ignored so that
    the cleanup and the line are not cut short."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt while the block runs (main thread only: signals are delivered there).
    A process started with SIGTERM ignored keeps ignoring it, as Python leaves an ignored SIGINT alone: deploy.sh
    starts the steps it reports on itself that way."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) == signal.SIG_IGN:
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(main: Callable[[list[str]], int], argv: Sequence[str], program: str,
        interrupted: str = "nothing it started runs on") -> int:
    """Run an entry point: a PipelineError is one line and EXIT_USAGE, a bug is EXIT_INTERNAL with a log, Ctrl-C or
    SIGTERM one line (`interrupted`: what state things are in, what may still run) and EXIT_INTERRUPTED."""
    try:
        with sigterm_interrupts():
            return main(list(argv))
    except PipelineError as e:
        prefix = "interrupted" if isinstance(e, Interrupted) else "error"
        print(f"{prefix}: {one_line(e)}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"interrupted: {program} stopped; {interrupted}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:  # the one place that turns a bug into a log file and exit code
        path = write_traceback(program)
        print(f"internal error in {program} (a bug, not your input): {type(e).__name__}: {one_line(e, 200)}; "
              f"traceback in {path}", file=sys.stderr)
        return EXIT_INTERNAL
