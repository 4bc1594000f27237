"""The local pipeline's PostgreSQL and Redis (deploytools/local_services.py): prepared as AWS leaves them, reachable
by the processor only through verified TLS with the local passwords, and gone (processes and data) once stopped,
also after the emulator that started them was killed.

Refusing a wrong CA or host name through the proxies is proved in tests/test_processor_records.py and
tests/test_client_tls.py, not repeated here.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from deploytools import local_services
from generator import config, contracts
from generator.tiers import cache

ROOT = Path(__file__).resolve().parent.parent


def test_every_environments_cache_users_are_the_local_redis_users_with_their_access_strings():
    """Mirrors the cache tier, read from its template (not a copy of its constants)."""
    users = local_services.cache_users()
    for cfg in config.ENVIRONMENTS.values():
        assert users[cache.processor_user_id(cfg)] == (cache.PROCESSOR_ACCESS, True)
    assert users["default"] == (cache.DEFAULT_USER_ACCESS, False)


def test_the_redis_config_turns_the_default_user_off_without_a_password_and_gives_the_others_theirs():
    users = {"default": ("off -@all", False), "video-processing-dev-processor": ("on ~* +@all -@dangerous", True)}
    lines = local_services.redis_config(6379, Path("/data"), users,
                                        {"video-processing-dev-processor": "secret"}).splitlines()
    assert "user default reset off -@all" in lines, "off, and no password at all: nobody signs in as it"
    assert "user video-processing-dev-processor reset on ~* +@all -@dangerous >secret" in lines
    assert "bind 127.0.0.1" in lines and 'save ""' in lines


def test_the_task_runner_names_the_users_the_local_services_do_not_know():
    coordinates = {"postgres": {"users": {"video_processor": "p"}}, "redis": {"users": {"dev-processor": "r"}}}
    assert local_services.unknown_users({"DATABASE_USERNAME": "video_processor", "REDIS_USERNAME": "dev-processor"},
                                     coordinates) == []
    assert local_services.unknown_users({"DATABASE_USERNAME": "intruder", "REDIS_USERNAME": "ProcessorCacheUser"},
                                     coordinates) == ["PostgreSQL user 'intruder'", "Redis user 'ProcessorCacheUser'"]


def test_a_task_definition_without_a_cache_gets_no_redis_variables():
    coordinates = {"ca_file": "/ca.pem", "postgres": {"host": "localhost", "port": 1, "users": {"u": "p"}},
                   "redis": {"host": "localhost", "port": 2, "users": {}}}
    variables = local_services.service_variables({"DATABASE_HOST": "db", "DATABASE_USERNAME": "u"}, coordinates)
    assert variables["DATABASE_PASSWORD"] == "p" and not [k for k in variables if k.startswith("REDIS_")]


def test_stop_left_behind_ends_no_process_whose_pid_was_recycled(tmp_path):
    """services.pids names a pid and its binary: a pid now running something else is left alone, and a data
    directory not made by the services is not removed."""
    stranger = subprocess.Popen(["sleep", "30"])
    other = tmp_path / "not-ours"
    other.mkdir()
    try:
        (tmp_path / local_services.PROCESSES_FILE).write_text(json.dumps({
            "root": str(other), "processes": [{"pid": stranger.pid, "exe": "/nonexistent/postgres", "signal": 2}]}))
        assert local_services.stop_left_behind(tmp_path) == []
        assert stranger.poll() is None and other.is_dir()
        assert not (tmp_path / local_services.PROCESSES_FILE).exists()
    finally:
        stranger.kill()
        stranger.wait()


def test_no_coordinates_is_one_line_saying_how_to_get_them(tmp_path):
    with pytest.raises(local_services.ServiceError, match=r"not running .*\./deploy\.sh --local --stop"):
        local_services.read_coordinates(tmp_path)
    (tmp_path / local_services.COORDINATES_FILE).write_text(json.dumps({"error": "Redis did not start (port)"}))
    with pytest.raises(local_services.ServiceError, match="did not start: Redis did not start"):
        local_services.read_coordinates(tmp_path)


def alive(record: dict) -> list[int]:
    return [p["pid"] for p in record["processes"] if local_services._alive(p["pid"], p["exe"])]


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    state = tmp_path_factory.mktemp("services-state")
    started = local_services.start_in_background(state)
    coordinates = started.wait()
    assert coordinates is not None, started.error
    record = json.loads((state / local_services.PROCESSES_FILE).read_text())
    yield state, coordinates, record
    started.stop()


@pytest.mark.slow
def test_the_coordinates_are_private_and_name_both_servers_behind_tls(services):
    state, coordinates, record = services
    assert stat.S_IMODE((state / local_services.COORDINATES_FILE).stat().st_mode) == 0o600, "it holds passwords"
    assert json.loads((state / local_services.COORDINATES_FILE).read_text()) == coordinates
    assert len(alive(record)) == 2, "a PostgreSQL and a redis-server"
    assert coordinates["postgres"]["host"] == coordinates["redis"]["host"] == "localhost"
    assert Path(coordinates["ca_file"]).read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")


@pytest.mark.slow
def test_the_processor_signs_in_to_postgresql_through_tls_and_writes_its_row(services):
    """As RDS and the bootstrap leave it: the processor's role reaches its table with the local password."""
    from processor import records
    from processor.pipeline import Job

    _, coordinates, _ = services
    postgres = coordinates["postgres"]
    role = contracts.DATABASE_APP_ROLE
    database = records.Database(postgres["host"], postgres["port"], postgres["database"], role, "password",
                                postgres["users"][role], Path(coordinates["ca_file"]))
    job = Job("local-1", 1, "media", "sources/local-1", "v-1", "ab" * 32, "media", "outputs/local-1/1/")
    now = datetime.now(timezone.utc)
    assert records.record(records.opener(database), records.row(job, records.PROCESSING, now), log=pytest.fail)
    from generator.functions.db_bootstrap import handler

    master = handler.open_connection(postgres["host"], postgres["port"], postgres["database"],
                                     postgres["master"]["user"], postgres["master"]["password"],
                                     cafile=Path(coordinates["ca_file"]))
    try:
        assert master.run(f"SELECT status FROM {contracts.DATABASE_APP_SCHEMA}.processing_runs "
                          "WHERE video_id = 'local-1'") == [["processing"]]
        assert master.run("SELECT rolsuper FROM pg_roles WHERE rolname = current_user") == [[False]], \
            "the master is RDS's: no superuser"
        assert master.run("SELECT pg_has_role(:r, 'rds_iam', 'MEMBER')", r=contracts.DATABASE_APP_ROLE) == [[True]]
    finally:
        master.close()


@pytest.mark.slow
def test_the_processor_and_the_api_sign_in_to_redis_through_tls_with_the_cache_tiers_access(services):
    import redis

    _, coordinates, _ = services

    def signed_in(user: str) -> redis.Redis:
        return redis.Redis(host=coordinates["redis"]["host"], port=coordinates["redis"]["port"], username=user,
                           password=coordinates["redis"]["users"][user], ssl=True,
                           ssl_ca_certs=coordinates["ca_file"], socket_timeout=5, driver_info=None)

    processor, reader = signed_in(cache.processor_user_id(config.get("dev"))), signed_in(
        cache.reader_user_id(config.get("dev")))
    try:
        assert processor.set("progress:local-1:1", json.dumps({"percent": 40}), ex=600)
        assert json.loads(reader.get("progress:local-1:1")) == {"percent": 40}
        for refused in (lambda: processor.get("progress:local-1:1"), lambda: reader.set("progress:local-1:1", "0"),
                        processor.flushall):  # SET only, GET only, nothing dangerous: the cache tier's strings
            with pytest.raises(redis.exceptions.NoPermissionError):
                refused()
    finally:
        processor.close()
        reader.close()
    anonymous = redis.Redis(host=coordinates["redis"]["host"], port=coordinates["redis"]["port"], ssl=True,
                            ssl_ca_certs=coordinates["ca_file"], socket_timeout=5, retry_on_error=[])
    with pytest.raises(redis.exceptions.AuthenticationError):
        anonymous.ping()  # the default user is off
    anonymous.close()


@pytest.mark.slow
def test_stop_ends_both_servers_and_removes_their_data_and_coordinates(tmp_path):
    started = local_services.start_in_background(tmp_path)
    assert started.wait() is not None, started.error
    record = json.loads((tmp_path / local_services.PROCESSES_FILE).read_text())
    assert len(alive(record)) == 2
    started.stop()
    assert alive(record) == [] and not Path(record["root"]).exists()
    assert not list(tmp_path.iterdir()), "no services.json (passwords) nor services.pids left"


# Starts the services as the emulator does, says so, then waits to be killed.
_HOLDER = ("import sys, time; from pathlib import Path; from deploytools import local_services; "
           "s = local_services.start_in_background(Path(sys.argv[1])); print('up:', s.wait() is not None, flush=True); "
           "time.sleep(120)")


@pytest.mark.slow
def test_a_killed_emulator_leaves_nothing_once_stop_left_behind_ran(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout is not None
        lines = iter(holder.stdout.readline, "")
        assert next((line for line in lines if line.startswith("up:")), "").strip() == "up: True"
        record = json.loads((tmp_path / local_services.PROCESSES_FILE).read_text())
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # no clean-up of its own
        holder.wait()
    deadline = time.monotonic() + 10
    while alive(record) and time.monotonic() < deadline:  # the kernel's parent-death signal ends them
        time.sleep(0.05)
    local_services.stop_left_behind(tmp_path)
    assert alive(record) == [] and not Path(record["root"]).exists()
    assert not (tmp_path / local_services.COORDINATES_FILE).exists()


def test_the_smoke_points_a_functions_cache_variables_at_the_local_redis(tmp_path):
    """The smoke runs the API function's handler here: a cache user it names on AWS signs in to the local Redis."""
    from deploytools import smoke

    assert smoke.local_client_variables({"JOBS_TABLE": "t"}, tmp_path) == {}, "names no service: nothing to change"
    (tmp_path / local_services.COORDINATES_FILE).write_text(json.dumps({
        "ca_file": "/ca.pem", "postgres": {"host": "localhost", "port": 1, "users": {}},
        "redis": {"host": "localhost", "port": 2, "users": {"dev-api": "pw"}}}))
    variables = smoke.local_client_variables({"REDIS_HOST": "aws", "REDIS_USERNAME": "dev-api", "REDIS_AUTH": "iam"},
                                             tmp_path)
    assert (variables["REDIS_HOST"], variables["REDIS_PASSWORD"], variables["REDIS_AUTH"]) == (
        "localhost", "pw", "password")
