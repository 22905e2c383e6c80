"""One piece of work per ModelDeployment at a time, on a thread pool that does not grow.

kopf runs change handlers, timers, daemons and child events of one owner concurrently. Each of
them here awaits the owner's asyncio lock in the event loop (costing no thread while it waits),
then runs its blocking API work on the loop's default executor, a fixed pool. So an old copy can
never apply after a new one, and a thousand deployments cost a thousand small locks, not a
thousand threads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")
V = TypeVar("V")
Key = tuple[str, str]


class PerObject:
    def __init__(self) -> None:
        self._locks: dict[Key, asyncio.Lock] = {}
        self._refresh_waiting: set[Key] = set()

    def lock(self, key: Key) -> asyncio.Lock:
        """The object's lock, for work that mixes awaiting in the loop with pooled threads."""
        return self._lock(key)

    def _lock(self, key: Key) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    async def run_seeing(
        self,
        key: Key,
        see: Callable[[], V],
        work: Callable[Concatenate[V, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run blocking `work` once no other work of this object runs, on the pooled threads,
        with `see()` taken in the event loop once the lock is held and passed first.

        For state the event loop owns (kopf's indexes): read after the wait, so it is current.
        """
        async with self._lock(key):
            seen = see()
            return await asyncio.to_thread(work, seen, *args, **kwargs)

    async def refresh(
        self,
        key: Key,
        see: Callable[[], V],
        work: Callable[Concatenate[V, P], None],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> None:
        """Like run_seeing, but a refresh already waiting for this object absorbs this one.

        The waiting refresh reads the object only after it gets the lock, so it sees whatever
        change prompted this call too: a burst of pod events costs one or two refreshes.
        """
        if key in self._refresh_waiting:
            return
        self._refresh_waiting.add(key)
        lock = self._lock(key)
        try:
            await lock.acquire()
        finally:  # acquired or cancelled: either way this refresh no longer waits
            self._refresh_waiting.discard(key)
        try:
            await asyncio.to_thread(work, see(), *args, **kwargs)
        finally:
            lock.release()

    def forget(self, key: Key) -> None:
        """Drop an idle lock of a deleted object (a busy one is dropped by the next forget)."""
        lock = self._locks.get(key)
        if lock is not None and not lock.locked():
            del self._locks[key]

    def __len__(self) -> int:
        return len(self._locks)
