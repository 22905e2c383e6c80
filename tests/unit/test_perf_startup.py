"""Replica start-up by cache state (perf/startup.py): a table over model sizes, and the
simulator taking it (`modelfleet simulate --cache warm|cold`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelfleet.perf.startup import StartupFacts, startup
from tests.unit.test_simulate import run_cli


@pytest.mark.parametrize(
    ("weights_gib", "layers", "cache", "download", "total"),
    [
        # Qwen2.5-7B bf16: 14.2 GiB, 28 layers
        (14.2, 28, "warm", 0.0, 30 + 14.2 + 28 * 0.9 + 28 * 0.6),
        (14.2, 28, "cold", 35.5, 35.5 + 30 + 14.2 + 28 * 0.9 + 28 * 0.6),
        # Llama-3.1-70B bf16: 131.4 GiB, 80 layers: minutes even warm, ~10 min cold
        (131.4, 80, "warm", 0.0, 30 + 131.4 + 80 * 0.9 + 80 * 0.6),
        (131.4, 80, "cold", 328.5, 328.5 + 30 + 131.4 + 80 * 0.9 + 80 * 0.6),
    ],
)
def test_startup_table(
    weights_gib: float, layers: int, cache: str, download: float, total: float
) -> None:
    found = startup(weights_gib, layers, cache)  # type: ignore[arg-type]
    assert found.download == pytest.approx(download)
    assert found.total == pytest.approx(total)


def test_a_warm_70b_replica_still_takes_minutes() -> None:
    """The cache saves the download only: loading, compiling and capturing remain."""
    warm, cold = startup(131.4, 80, "warm"), startup(131.4, 80, "cold")
    assert 4 * 60 < warm.total < 5 * 60
    assert 9 * 60 < cold.total < 11 * 60
    assert cold.total - warm.total == pytest.approx(cold.download)


def test_enforce_eager_skips_compilation_and_graphs_and_facts_are_overridable() -> None:
    eager = startup(14.2, 28, "warm", enforce_eager=True)
    assert (eager.compile, eager.graph_capture) == (0.0, 0.0)
    fast_disk = StartupFacts(load_gib_per_second=4.0)
    assert startup(14.2, 28, "warm", fast_disk).load == pytest.approx(3.55)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((0.0, 28, "warm"), "positive"),
        ((14.2, 0, "warm"), "positive"),
        ((14.2, 28, "lukewarm"), "warm or cold"),
    ],
)
def test_bad_input(args: tuple[float, int, str], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        startup(*args)  # type: ignore[arg-type]


def test_facts_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="positive"):
        StartupFacts(download_gib_per_second=0)
    with pytest.raises(ValueError, match="negative"):
        StartupFacts(process_seconds=-1)


@pytest.mark.parametrize("cache", ["warm", "cold"])
def test_simulate_takes_the_startup_from_the_cache_state(tmp_path: Path, cache: str) -> None:
    code, out, _ = run_cli(tmp_path, "--cache", cache)
    assert code == 0
    header = next(line for line in out.splitlines() if "start-up" in line)
    seconds = float(header.rsplit("start-up ", 1)[1].split(" s")[0])
    warm_floor = 30 + 32 * (0.9 + 0.6)  # Llama-3.1-8B: process, compile, graphs
    assert seconds > warm_floor and (seconds > warm_floor + 30) is (cache == "cold")


def test_simulate_refuses_both_a_delay_and_a_cache_state(tmp_path: Path) -> None:
    code, _, err = run_cli(tmp_path, "--cache", "warm", "--startup-delay", "60")
    assert code == 2 and "give one of them" in err
