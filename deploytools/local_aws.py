"""The embedded local AWS: moto's server, patched for this project, on localhost.

    python -m deploytools.local_aws start [--port N] [--state-dir DIR]   start in the background (or reuse)
    python -m deploytools.local_aws stop  [--state-dir DIR]              stop the one started from DIR
    python -m deploytools.local_aws status [--state-dir DIR]
    python -m deploytools.local_aws serve --port N [--state-dir DIR]     run in the foreground

The workarounds must live inside the server process, so `serve` patches moto (both halves of
deploytools.moto_layer), enables moto's Step Functions execution, and then runs moto's server in the same
process. Only `serve` imports moto: it is a
dev-only dependency. `start` runs `serve` detached and records its pid, port
and log under the state directory (default build/local-aws/). State is in memory: stopping loses it.
`serve` also runs a local PostgreSQL and Redis for the processor (deploytools/local_services.py: their coordinates in
DIR/services.json); `stop` ends them too, also when the emulator was killed (their pids are in DIR/services.pids).

One emulator per state directory: `start` holds an exclusive lock on DIR/start.lock while it checks, starts
and waits, so a concurrent `start` waits and then reuses the one started. `serve` carries the absolute state
directory in its command line, so `stop` finds it even when the pid file (or the whole directory) is gone.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from generator import errors

DEFAULT_PORT = 4599
DEFAULT_STATE_DIR = Path(__file__).resolve().parent.parent / "build" / "local-aws"
START_TIMEOUT_S = 60
PORTS = range(1024, 65536)  # not the privileged ones: the emulator runs as the user


def endpoint(port: int) -> str:
    # localhost, not 127.0.0.1: moto 5.2.5 reads the bucket name from the host part otherwise.
    return f"http://localhost:{port}"


def is_up(port: int) -> bool:
    """Anything answering HTTP on the port (moto answers / with an error page: that is enough)."""
    try:
        with urllib.request.urlopen(f"{endpoint(port)}/", timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


def _files(state_dir: Path) -> tuple[Path, Path, Path]:
    return state_dir / "server.pid", state_dir / "server.port", state_dir / "server.log"


def _running(state_dir: Path) -> tuple[int, int] | None:
    """(pid, port) of the server started from state_dir, if it is still alive and answering."""
    pid_file, port_file, _ = _files(state_dir)
    try:
        pid, port = int(pid_file.read_text()), int(port_file.read_text())
    except (OSError, ValueError):
        return None
    return (pid, port) if pid in _servers(state_dir) else None  # not a recycled pid


def _servers(state_dir: Path) -> list[int]:
    """Pids of this user's `serve` processes for state_dir, found by their command line (not the pid file)."""
    wanted = ["deploytools.local_aws", "serve", "--state-dir", str(state_dir.resolve())]
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if proc.stat().st_uid != os.getuid():
                continue
            argv = [a.decode(errors="replace") for a in (proc / "cmdline").read_bytes().split(b"\0")]
        except OSError:
            continue  # gone meanwhile
        if all(w in argv for w in wanted):
            found.append(int(proc.name))
    return sorted(found)


def port_is_free(port: int) -> bool:
    """True when the emulator could listen on the port: nothing else is bound to it, answering or not."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does: TIME_WAIT is no owner
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(port: int, state_dir: Path) -> int:
    state_dir.mkdir(parents=True, exist_ok=True)
    # A concurrent start (two deploys at once) waits here, then finds and reuses the emulator started.
    with open(state_dir / "start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _start_locked(port, state_dir)


def _start_locked(port: int, state_dir: Path) -> int:
    running = _running(state_dir)
    if running and is_up(running[1]):
        if running[1] != port:
            raise errors.InputError(f"a local AWS started from {state_dir} already runs on port {running[1]}, not "
                                    f"{port}; use LOCAL_AWS_PORT={running[1]}, or stop it first: "
                                    "./deploy.sh --local --stop")
        print(f"local AWS already running: {endpoint(port)} (pid {running[0]})")
        return 0
    stop(state_dir, quiet=True)  # alive but not answering, or left without a pid file: replace it
    if not port_is_free(port):
        raise errors.InputError(f"port {port} is in use by another program (it is not a local AWS started from "
                                f"{state_dir}); stop that program or choose another port, e.g. "
                                f"LOCAL_AWS_PORT={_free_port()} ./deploy.sh --local")
    pid_file, port_file, log_file = _files(state_dir)
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "deploytools.local_aws", "serve", "--port", str(port),
             "--state-dir", str(state_dir.resolve())],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while not is_up(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise errors.AwsError(f"the local AWS did not start on port {port}; see {log_file}")
        time.sleep(0.2)
    pid_file.write_text(str(proc.pid))
    port_file.write_text(str(port))
    print(f"local AWS started: {endpoint(port)} (pid {proc.pid}, log {log_file})")
    return 0


def stop(state_dir: Path, quiet: bool = False) -> int:
    """Stop every emulator started from state_dir (by pid file or by command line), and wait until it is gone."""
    pid_file, port_file, _ = _files(state_dir)
    started = pids = _servers(state_dir)
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while pids and time.monotonic() < deadline:
        pids = [pid for pid in pids if pid in _servers(state_dir)]
        time.sleep(0.1)
    for pid in pids:  # did not stop on SIGTERM
        os.kill(pid, signal.SIGKILL)
    from deploytools import local_services

    # A stopped emulator ended its PostgreSQL and Redis itself; a killed one left their pids and data behind.
    left = local_services.stop_left_behind(state_dir)
    if not quiet:
        print(f"local AWS stopped (pid {', '.join(map(str, started))})" if started else
              f"local AWS is not running (nothing started from {state_dir})")
        if left:
            print(f"the local PostgreSQL and Redis it left behind were stopped (pid {', '.join(map(str, left))}) "
                  "and their data removed")
    pid_file.unlink(missing_ok=True)
    port_file.unlink(missing_ok=True)
    return 0


def status(state_dir: Path) -> int:
    running = _running(state_dir)
    if running is None:
        print("local AWS is not running")
        return 1
    up = "running" if is_up(running[1]) else "not answering"
    print(f"local AWS {up}: {endpoint(running[1])} (pid {running[0]})")
    return 0 if up == "running" else 1


def serve(port: int, state_dir: Path) -> int:
    from moto.core.config import default_user_config
    from moto.server import ThreadedMotoServer

    from deploytools import local_services
    from deploytools.moto_layer import MOTO_VERSION, cloudformation, stepfunctions

    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    state_dir.mkdir(parents=True, exist_ok=True)
    local_services.stop_left_behind(state_dir)  # of an emulator that was killed
    # PostgreSQL and Redis start on a thread of their own (about a second): the emulator answers meanwhile, and a
    # task waits for them before its processor starts.
    services = local_services.start_in_background(state_dir)
    try:
        cloudformation.apply_all()
        # State machines run: moto's interpreter, patched as the behaviour tests patch it, calls the services back
        # through this server (it finds the port in MOTO_PORT).
        default_user_config["stepfunctions"] = {"execute_state_machine": True}
        os.environ["MOTO_PORT"] = str(port)
        patches = stepfunctions.apply_to_emulator(endpoint(port), services.wait)  # held: collected, it would undo
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        print(f"moto {MOTO_VERSION} serving on {endpoint(port)} with workarounds: "
              + ", ".join(w.__name__ for w in (*cloudformation.WORKAROUNDS, *stepfunctions.WORKAROUNDS))
              + f"; state machines execute, and a task whose source is in S3 runs `python -m processor` here, "
              f"signed in to a local PostgreSQL and Redis (a videoId starting {stepfunctions.FAILING_VIDEO_PREFIX!r} "
              f"makes its task exit {stepfunctions.FAILING_EXIT_CODE} instead)", flush=True)
        done.wait()
        server.stop()
        patches.close()
    finally:
        services.stop()
    return 0


def port_value(text: str) -> int:
    """LOCAL_AWS_PORT or --port: a port the emulator can listen on as this user, else one line and exit 2."""
    if not text.isdigit() or int(text) not in PORTS:
        raise errors.InputError(f"LOCAL_AWS_PORT {text!r} is not a port this user can listen on: choose one from "
                                f"{PORTS.start} to {PORTS.stop - 1}")
    return int(text)


def _main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m deploytools.local_aws", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=("start", "stop", "status", "serve"))
    p.add_argument("--port", default=os.environ.get("LOCAL_AWS_PORT", str(DEFAULT_PORT)))
    p.add_argument("--state-dir", type=Path,
                   default=Path(os.environ.get("LOCAL_AWS_STATE_DIR", DEFAULT_STATE_DIR)))
    a = p.parse_args(argv)
    if a.command == "stop":
        return stop(a.state_dir)
    if a.command == "status":
        return status(a.state_dir)
    port = port_value(a.port)
    return serve(port, a.state_dir) if a.command == "serve" else start(port, a.state_dir)


def main(argv: list[str] | None = None) -> int:
    return errors.run(_main, sys.argv[1:] if argv is None else argv, "deploytools.local_aws",
                      interrupted="an emulator it was starting or stopping may still run: ./deploy.sh --local "
                                  "--stop stops it")


if __name__ == "__main__":
    sys.exit(main())
