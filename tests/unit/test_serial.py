"""One piece of work per object at a time (issue 9, items 3 and 5)."""

from __future__ import annotations

import asyncio
import threading
import time

from modelfleet.handlers.serial import PerObject


class Recorder:
    """Blocking work that records how many run at once, per object and overall."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.running: dict[str, int] = {}
        self.most: dict[str, int] = {}
        self.calls: list[str] = []
        self.most_overall = 0

    def work(self, name: str, seconds: float = 0.05) -> str:
        with self._lock:
            self.calls.append(name)
            self.running[name] = self.running.get(name, 0) + 1
            self.most[name] = max(self.most.get(name, 0), self.running[name])
            self.most_overall = max(self.most_overall, sum(self.running.values()))
        time.sleep(seconds)
        with self._lock:
            self.running[name] -= 1
        return name

    def view_work(self, _: None, name: str, seconds: float = 0.05) -> str:
        return self.work(name, seconds)


def _nothing() -> None:
    return None


def recorder_sleep(_: None, seconds: float) -> None:
    time.sleep(seconds)


def test_work_on_one_object_never_overlaps_and_keeps_its_order() -> None:
    serial, recorder = PerObject(), Recorder()

    async def main() -> list[str]:
        return await asyncio.gather(
            *(serial.run_seeing(("ns", "a"), _nothing, recorder.view_work, "a") for _ in range(5)),
            *(serial.run_seeing(("ns", "b"), _nothing, recorder.view_work, "b") for _ in range(5)),
        )

    results = asyncio.run(main())
    assert results == ["a"] * 5 + ["b"] * 5
    assert recorder.most == {"a": 1, "b": 1}
    assert recorder.most_overall == 2, "different objects should run side by side"


def test_a_burst_of_refreshes_costs_at_most_two_runs() -> None:
    serial, recorder = PerObject(), Recorder()

    async def main() -> None:
        await asyncio.gather(
            *(serial.refresh(("ns", "a"), _nothing, recorder.view_work, "a") for _ in range(20))
        )

    asyncio.run(main())
    assert 1 <= recorder.calls.count("a") <= 2


def test_a_refresh_after_the_waiting_one_started_runs_again() -> None:
    """A change seen after the waiting refresh read the object must not be lost."""
    serial, recorder = PerObject(), Recorder()

    async def main() -> None:
        first = asyncio.create_task(
            serial.refresh(("ns", "a"), _nothing, recorder.view_work, "a", 0.1)
        )
        await asyncio.sleep(0.05)  # the first is running now, no refresh waits
        await asyncio.gather(first, serial.refresh(("ns", "a"), _nothing, recorder.view_work, "a"))

    asyncio.run(main())
    assert recorder.calls.count("a") == 2


def test_a_cancelled_waiting_refresh_does_not_block_later_ones() -> None:
    serial, recorder = PerObject(), Recorder()

    async def main() -> None:
        busy = asyncio.create_task(
            serial.run_seeing(("ns", "a"), _nothing, recorder.view_work, "a", 0.1)
        )
        await asyncio.sleep(0.01)
        waiting = asyncio.create_task(
            serial.refresh(("ns", "a"), _nothing, recorder.view_work, "a")
        )
        await asyncio.sleep(0.01)
        waiting.cancel()
        await busy
        await serial.refresh(("ns", "a"), _nothing, recorder.view_work, "a")

    asyncio.run(main())
    assert recorder.calls.count("a") == 2


def test_forget_drops_idle_locks_only() -> None:
    serial = PerObject()

    async def main() -> None:
        await serial.run_seeing(("ns", "a"), _nothing, recorder_sleep, 0)
        serial.forget(("ns", "a"))
        assert len(serial) == 0

    asyncio.run(main())
