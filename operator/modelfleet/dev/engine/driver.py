"""Run a `perf.engine.ReplicaEngine` in real time for one emulated pod.

The engine is a discrete-event model in explicit time; here its clock is `time.monotonic()`
(engine time 0 = when the driver started). Every call first advances the engine to now. A driver
task sleeps until the engine's next event or a new submission, advances, and resolves each
request's `first_token` and `finished` futures. Only the event loop's thread touches the engine.

A request whose client went away is aborted (`abort`), as the real engines do: it leaves the
batch at the next step boundary and frees its share of the KV cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from modelfleet.perf.engine import EngineLoad, ReplicaEngine, Request

log = logging.getLogger(__name__)


@dataclass
class Tracked:
    """One submitted request; futures resolve with the engine time of each event."""

    request: Request
    first_token: asyncio.Future[float]
    finished: asyncio.Future[float]

    @property
    def id(self) -> str:
        return self.request.id


class EngineDriver:
    def __init__(
        self,
        engine: ReplicaEngine,
        *,
        on_first_token: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self._clock = clock
        self._origin = clock() - engine.now
        self._on_first_token = on_first_token
        self._tracked: dict[str, Tracked] = {}
        self._wakeup = asyncio.Event()

    def now(self) -> float:
        """Engine time now."""
        return self._clock() - self._origin

    def advance(self) -> None:
        """Bring the engine to now and settle the futures of what happened meanwhile."""
        until = max(self.now(), self.engine.now)
        for event in self.engine.advance(until):
            tracked = self._tracked.get(event.request_id)
            if tracked is None:
                continue
            if event.kind == "first_token" and not tracked.first_token.done():
                tracked.first_token.set_result(event.time)
                if self._on_first_token is not None:
                    self._on_first_token(event.time - tracked.request.arrival)
            elif event.kind == "finished":
                if not tracked.first_token.done():  # a one-token answer: both at once
                    tracked.first_token.set_result(event.time)
                    if self._on_first_token is not None:
                        self._on_first_token(event.time - tracked.request.arrival)
                if not tracked.finished.done():
                    tracked.finished.set_result(event.time)
                del self._tracked[event.request_id]

    def submit(self, prompt_tokens: int, output_tokens: int, request_id: str = "") -> Tracked:
        self.advance()
        loop = asyncio.get_running_loop()
        request = Request(
            id=request_id or f"cmpl-{uuid.uuid4().hex}",
            arrival=self.engine.now,
            prompt_tokens=prompt_tokens,
            output_tokens=output_tokens,
        )
        tracked = Tracked(request, loop.create_future(), loop.create_future())
        self._tracked[request.id] = tracked
        self.engine.submit(request)
        self._wakeup.set()
        return tracked

    def abort(self, tracked: Tracked) -> None:
        """The client went away: drop the request from the engine; its futures are cancelled."""
        if self._tracked.pop(tracked.id, None) is None:
            return
        self.advance()
        self.engine.abort(tracked.id)
        for future in (tracked.first_token, tracked.finished):
            future.cancel()
        self._wakeup.set()

    def generated(self, tracked: Tracked) -> int:
        """Output tokens of the request so far."""
        if tracked.finished.done():
            return tracked.request.output_tokens
        self.advance()
        return min(self.engine.generated(tracked.id), tracked.request.output_tokens)

    def load(self) -> EngineLoad:
        self.advance()
        return self.engine.load()

    @property
    def in_flight(self) -> int:
        return len(self._tracked)

    async def run(self) -> None:
        """Advance at each engine event until cancelled."""
        while True:
            self._wakeup.clear()
            self.advance()
            next_time = self.engine.next_event_time()
            timeout = None if next_time is None else max(0.0, next_time - self.now())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout)

    def fail_all(self, error: BaseException) -> None:
        """Stop: every unfinished request gets `error` (the pod went away)."""
        for tracked in self._tracked.values():
            for future in (tracked.first_token, tracked.finished):
                if not future.done():
                    future.set_exception(error)
                    future.exception()  # retrieved: no "never retrieved" warning if unawaited
        self._tracked.clear()
