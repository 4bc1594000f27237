"""Thread-safety workarounds: moto 5.2.5's DynamoDB and ECS backends are not safe to call from several threads.

AWS serves concurrent calls; job control makes them (API requests, the scheduler's EventBridge deliveries and
every execution's interpreter thread at once), and tests/jobs_harness.py runs all of them in one process
against moto. Each workaround serialises one backend's calls with a lock of its own; each has a canary in
tests/test_moto_workarounds.py that shows unpatched moto still loses the race (and fails once moto no longer
does: then delete the workaround). :func:`serialised_backends` applies them all, after the layer's version check.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any

from deploytools.moto_layer import patched, require_moto_version


@contextlib.contextmanager
def _serialised(cls: Any, names: tuple[str, ...]) -> Iterator[None]:
    """Run the named methods of ``cls`` one at a time (a re-entrant lock: moto's methods call each other)."""
    lock = threading.RLock()

    def locked(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            with lock:
                return original(self, *args, **kwargs)
        return call

    with contextlib.ExitStack() as stack:
        for name in names:
            stack.enter_context(patched(cls, name, locked(getattr(cls, name))))
        yield


def serialised_dynamodb() -> contextlib.AbstractContextManager[None]:
    """One DynamoDB call at a time. moto 5.2.5 runs ``TransactWriteItems`` by deep-copying every table it names
    and, when a condition fails, putting the copy back: a write another thread made in between is undone (and a
    read in between sees the half-applied transaction). DynamoDB isolates a transaction from other writes to the
    same items (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html#transaction-isolation)
    and never loses a write that succeeded. The reads are serialised too: they iterate the item dicts the
    writes change."""
    from moto.dynamodb.models import DynamoDBBackend

    return _serialised(DynamoDBBackend, ("transact_write_items", "put_item", "update_item", "get_item", "query",
                                         "scan", "delete_item"))


def serialised_ecs_tasks() -> contextlib.AbstractContextManager[None]:
    """One ECS RunTask or DescribeTasks at a time. moto 5.2.5's DescribeTasks iterates the cluster's task dict
    while another thread's RunTask adds to it, and fails with "dictionary changed size during iteration" (an
    HTTP 500 to the caller; in job control about one execution in a few hundred ended States.Runtime). ECS
    serves both calls concurrently."""
    from moto.ecs.models import EC2ContainerServiceBackend

    return _serialised(EC2ContainerServiceBackend, ("run_task", "describe_tasks"))


WORKAROUNDS = (serialised_dynamodb, serialised_ecs_tasks)


@contextlib.contextmanager
def serialised_backends() -> Iterator[None]:
    """Every thread-safety workaround at once; use inside or outside ``mock_aws``."""
    require_moto_version()
    with contextlib.ExitStack() as stack:
        for workaround in WORKAROUNDS:
            stack.enter_context(workaround())
        yield
