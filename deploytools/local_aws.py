"""The embedded local AWS: moto's server, patched for this project, on localhost.

    python -m deploytools.local_aws start [--port N] [--state-dir DIR]   start in the background (or reuse)
    python -m deploytools.local_aws stop  [--state-dir DIR]              stop the one started from DIR
    python -m deploytools.local_aws status [--state-dir DIR]
    python -m deploytools.local_aws serve --port N                       run in the foreground

The workarounds must live inside the server process, so `serve` patches moto (both halves of
deploytools.moto_layer), enables moto's Step Functions execution, and then runs moto's server in the same
process. Only `serve` imports moto: it is a
dev-only dependency. `start` runs `serve` detached and records its pid, port
and log under the state directory (default build/local-aws/). State is in memory: stopping loses it.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

DEFAULT_PORT = 4599
DEFAULT_STATE_DIR = Path(__file__).resolve().parent.parent / "build" / "local-aws"
START_TIMEOUT_S = 60


def endpoint(port: int) -> str:
    # localhost, not 127.0.0.1: moto 5.2.5 reads the bucket name from the host part otherwise.
    return f"http://localhost:{port}"


def is_up(port: int) -> bool:
    """Anything answering HTTP on the port (moto answers / with an error page: that is enough)."""
    try:
        with urllib.request.urlopen(f"{endpoint(port)}/", timeout=5):
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
        os.kill(pid, 0)
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes() if Path("/proc").is_dir() else b"local_aws"
    except (OSError, ValueError):
        return None
    return (pid, port) if b"local_aws" in cmdline else None  # not a recycled pid


def start(port: int, state_dir: Path) -> int:
    running = _running(state_dir)
    if running and is_up(running[1]):
        if running[1] != port:
            print(f"local AWS already running from {state_dir} on port {running[1]}, not {port}; "
                  "stop it first (./deploy.sh --local --stop)", file=sys.stderr)
            return 1
        print(f"local AWS already running: {endpoint(port)} (pid {running[0]})")
        return 0
    if running:  # alive but not answering: replace it
        stop(state_dir)
    if is_up(port):
        print(f"port {port} is taken by another server; choose another with LOCAL_AWS_PORT", file=sys.stderr)
        return 1
    state_dir.mkdir(parents=True, exist_ok=True)
    pid_file, port_file, log_file = _files(state_dir)
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "deploytools.local_aws", "serve", "--port", str(port)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while not is_up(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            print(f"local AWS did not start; see {log_file}", file=sys.stderr)
            return 1
        time.sleep(0.2)
    pid_file.write_text(str(proc.pid))
    port_file.write_text(str(port))
    print(f"local AWS started: {endpoint(port)} (pid {proc.pid}, log {log_file})")
    return 0


def stop(state_dir: Path) -> int:
    pid_file, port_file, _ = _files(state_dir)
    running = _running(state_dir)
    if running is None:
        print(f"local AWS is not running (nothing started from {state_dir})")
    else:
        os.kill(running[0], signal.SIGTERM)
        for _ in range(50):
            try:
                os.kill(running[0], 0)
            except OSError:
                break
            time.sleep(0.1)
        print(f"local AWS stopped (pid {running[0]})")
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


def serve(port: int) -> int:
    from moto.core.config import default_user_config
    from moto.server import ThreadedMotoServer

    from deploytools.moto_layer import MOTO_VERSION, cloudformation, stepfunctions

    cloudformation.apply_all()
    # State machines run: moto's interpreter, patched as the behaviour tests patch it, calls the services back
    # through this server (it finds the port in MOTO_PORT).
    default_user_config["stepfunctions"] = {"execute_state_machine": True}
    os.environ["MOTO_PORT"] = str(port)
    patches = stepfunctions.apply_to_emulator()  # held: a collected stack would undo them
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    print(f"moto {MOTO_VERSION} serving on {endpoint(port)} with workarounds: "
          + ", ".join(w.__name__ for w in (*cloudformation.WORKAROUNDS, *stepfunctions.WORKAROUNDS))
          + f"; state machines execute (a videoId starting {stepfunctions.FAILING_VIDEO_PREFIX!r} makes its task "
          f"exit {stepfunctions.FAILING_EXIT_CODE})", flush=True)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    server.stop()
    patches.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m deploytools.local_aws", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=("start", "stop", "status", "serve"))
    p.add_argument("--port", type=int, default=int(os.environ.get("LOCAL_AWS_PORT", DEFAULT_PORT)))
    p.add_argument("--state-dir", type=Path,
                   default=Path(os.environ.get("LOCAL_AWS_STATE_DIR", DEFAULT_STATE_DIR)))
    a = p.parse_args(argv)
    if a.command == "serve":
        return serve(a.port)
    if a.command == "start":
        return start(a.port, a.state_dir)
    if a.command == "stop":
        return stop(a.state_dir)
    return status(a.state_dir)


if __name__ == "__main__":
    sys.exit(main())
