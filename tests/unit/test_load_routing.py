"""The load generator picks pods as a Service does (random, seeded) unless told otherwise."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from modelfleet.dev.engine.load import LoadConfig, Target, choose_target

PODS = [Target(f"p{i}", f"http://127.0.0.{i}:8000") for i in range(3)]


def picks(routing: str, seed: int, outstanding: Counter[str] | None = None) -> list[str]:
    rng = random.Random(seed)
    counts = outstanding if outstanding is not None else Counter()
    return [choose_target(PODS, routing, rng, counts, turn).pod for turn in range(300)]


def test_random_is_the_default_seeded_and_spread() -> None:
    assert LoadConfig().routing == "random"
    first = picks("random", 1)
    assert first == picks("random", 1) != picks("random", 2)
    assert min(Counter(first).values()) >= 70
    assert first[:3] != ["p1", "p2", "p0"] or first[3:6] != ["p1", "p2", "p0"]


def test_least_outstanding_and_round_robin() -> None:
    busy = Counter({"p0": 5, "p1": 0, "p2": 3})
    assert set(picks("least-outstanding", 0, busy)) == {"p1"}
    assert picks("round-robin", 0)[:4] == ["p0", "p1", "p2", "p0"]


def test_unknown_routing_is_refused() -> None:
    with pytest.raises(ValueError, match="routing"):
        LoadConfig(routing="nearest")
