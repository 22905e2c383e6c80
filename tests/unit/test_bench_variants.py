"""bench/autoscale's robustness variants: traces derived from a day trace (rate, order)."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

from modelfleet.dev.replay.trace import TraceRequest

RUN = Path(__file__).resolve().parents[2] / "bench" / "autoscale" / "run.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_autoscale_run", RUN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


BENCH = _bench()
WINDOW = BENCH.VARIANT_WINDOW


def trace(per_window: list[int]) -> list[TraceRequest]:
    """`per_window[k]` requests spread over window k; prompt tokens name the window."""
    out = []
    for k, n in enumerate(per_window):
        for i in range(n):
            out.append(TraceRequest(k * WINDOW + (i + 0.5) * WINDOW / n, 100 + k, 10))
    return out


def windows(requests: list[TraceRequest]) -> Counter[int]:
    return Counter(int(r.arrival // WINDOW) for r in requests)


@pytest.mark.parametrize(
    ("kind", "low", "high"),
    [
        pytest.param("thin-0.7", 0.66, 0.74, id="thin"),
        pytest.param("dup-1.4", 1.36, 1.44, id="duplicate"),
        pytest.param("reversed", 1.0, 1.0, id="reversed"),
        pytest.param("shifted", 1.0, 1.0, id="shifted"),
    ],
)
def test_a_variant_scales_the_rate_or_keeps_it(kind: str, low: float, high: float) -> None:
    base = trace([1000, 3000, 2000, 500])
    derived = BENCH.derive(base, kind)
    assert low <= len(derived) / len(base) <= high
    assert [r.arrival for r in derived] == sorted(r.arrival for r in derived)
    assert BENCH.derive(base, kind) == derived  # seeded: the same trace every run


def test_duplicates_stay_near_their_original() -> None:
    base = trace([1000])
    derived = BENCH.derive(base, "dup-1.4")
    assert all(0 <= r.arrival < WINDOW + BENCH.VARIANT_JITTER for r in derived)


@pytest.mark.parametrize(
    ("kind", "order"),
    [
        pytest.param("reversed", [3, 2, 1, 0], id="reversed"),
        pytest.param("shifted", [2, 3, 0, 1], id="shifted-by-half"),
    ],
)
def test_windows_move_whole(kind: str, order: list[int]) -> None:
    base = trace([10, 30, 20, 5])
    derived = BENCH.derive(base, kind)
    # Window k of the derived trace holds exactly what window order[k] held, timing inside kept.
    for k, source in enumerate(order):
        moved = [r for r in derived if int(r.arrival // WINDOW) == k]
        original = [r for r in base if int(r.arrival // WINDOW) == source]
        assert {r.prompt_tokens for r in moved} == {100 + source}
        assert [r.arrival - k * WINDOW for r in moved] == pytest.approx(
            [r.arrival - source * WINDOW for r in original]
        )
    assert windows(derived) == Counter({k: [10, 30, 20, 5][s] for k, s in enumerate(order)})


def test_an_unknown_variant_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown variant"):
        BENCH.derive(trace([1]), "mirror")
