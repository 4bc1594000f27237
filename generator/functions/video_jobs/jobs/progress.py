"""What GET /videos/{videoId} shows of a running attempt's progress: the value the processor last wrote to Redis
under contract.progress_key, {"percent": 0-100, "updatedAt": "<UTC>"}.

Read as the API's own cache user, which may GET progress keys and nothing else (the cache tier), signed in with
the function role's IAM token (jobs/cache_connection.py, the processor's copy). A courtesy, never a reason to fail
or slow the answer: short timeouts, and after a failure (one log line) no try for BACKOFF_SECONDS in this instance;
a missing, expired or malformed value is simply not shown. The client is made by the first read and kept in the
handler's CLIENTS, like the boto3 clients.
"""

import json
import logging
import os
import re
import time

import contract as c

from . import cache_connection

LOG = logging.getLogger(__name__)
TIMEOUT_SECONDS = 0.5  # connect and each read: a connection in the VPC signs in within milliseconds
BACKOFF_SECONDS = 30
UPDATED_AT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
CLIENT, DOWN_UNTIL = "redis", "redis-down-until"  # keys of the handler's CLIENTS


def client(clients, environ):
    """The instance's Redis client, made once; None when the function's environment names no cache."""
    if CLIENT not in clients:
        cache = cache_connection.from_environment(environ)
        clients[CLIENT] = cache_connection.connect(cache, TIMEOUT_SECONDS) if cache else None
    return clients[CLIENT]


def shown(raw):
    """The progress to show from a stored value, or None (logged) when it is not what the processor writes."""
    try:
        found = json.loads(raw)
    except ValueError:
        found = None
    if (isinstance(found, dict) and set(found) == {"percent", "updatedAt"} and type(found["percent"]) is int
            and 0 <= found["percent"] <= 100 and isinstance(found["updatedAt"], str)
            and UPDATED_AT.fullmatch(found["updatedAt"])):
        return found
    LOG.warning("progress value not shown: not {percent, updatedAt} as the processor writes it: %r", raw[:200])
    return None


def read(clients, video_id, attempt, environ=None):
    """The attempt's progress, or None: none written (or expired), no cache named, or Redis failing (logged)."""
    if time.monotonic() < clients.get(DOWN_UNTIL, 0.0):
        return None
    try:
        redis_client = client(clients, os.environ if environ is None else environ)
        raw = redis_client.get(c.progress_key(video_id, attempt)) if redis_client else None
    except Exception as e:  # settings, network, TLS, sign-in, ACL: the answer goes out without progress
        clients[DOWN_UNTIL] = time.monotonic() + BACKOFF_SECONDS
        LOG.warning("progress of %s attempt %s not read (%s: %s); not tried again for %d s", video_id, attempt,
                    type(e).__name__, e, BACKOFF_SECONDS)
        return None
    return shown(raw) if raw is not None else None
