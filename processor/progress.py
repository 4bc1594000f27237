"""The attempt's progress in Redis, for GET /videos/{videoId}: `progress:<videoId>:<attempt>` (contract.progress_key)
holding {"percent": 0-100, "updatedAt": "<UTC>"}, expiring contract.PROGRESS_TTL_SECONDS after each write.

Progress is a courtesy to whoever polls; the job table is the video's status. So Redis must never fail or slow the
encode: short timeouts (TIMEOUT_SECONDS), one try per write, and after the first failure one line on stderr and no
further try for this attempt (a cache that failed once in a short task is not worth waiting on again). The writes
come from the encode's progress callback at most every PROGRESS_EVERY_SECONDS (processor/__main__.py), then 100
when the attempt is done. Connecting and signing in: processor/cache_connection.py.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from processor import cache_connection, contract

TIMEOUT_SECONDS = 2.0
DONE = 100


def stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def percent_encoded(fraction: float) -> int:
    """What the encode's fraction shows: 0-99 (100 is kept for the attempt done, uploads and all)."""
    return max(0, min(DONE - 1, int(fraction * 100)))


def value(percent: int, now: datetime) -> str:
    return json.dumps({"percent": percent, "updatedAt": now.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")},
                      sort_keys=True)


class Writer:
    """Writes one attempt's progress; never raises."""

    def __init__(self, cache: cache_connection.Cache, key: str, log: Callable[[str], None] = stderr,
                 session: Any = None):
        self.cache, self.key, self.log, self.session = cache, key, log, session
        self.client: Any = None
        self.gave_up = False

    def write(self, percent: int) -> bool:
        """True when Redis holds `percent` now; False (logged once) when it does not and will not for this attempt."""
        if self.gave_up:
            return False
        try:
            if self.client is None:
                self.client = cache_connection.connect(self.cache, TIMEOUT_SECONDS, self.session)
            self.client.set(self.key, value(percent, datetime.now(timezone.utc)), ex=contract.PROGRESS_TTL_SECONDS)
            return True
        except Exception as e:  # progress is a courtesy: no failure of it may touch the attempt
            self.gave_up = True
            self.log(f"processor: {self.key}: progress is not written to Redis ({type(e).__name__}: {e}); no further "
                     "try for this attempt, the job table stays the video's status")
            self.close()
            return False

    def close(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):  # closing a broken connection may fail too: nothing to do then
                self.client.close()
            self.client = None


def writer(environ: Mapping[str, str], video_id: str, attempt: int, log: Callable[[str], None] = stderr
           ) -> Writer | None:
    """The attempt's writer, or None: no REDIS_HOST (a run without a cache), or settings it cannot use (logged)."""
    try:
        cache = cache_connection.from_environment(environ)
    except cache_connection.CacheSettingsError as e:
        log(f"processor: no progress is written: {e}")
        return None
    return Writer(cache, contract.progress_key(video_id, attempt), log) if cache else None
