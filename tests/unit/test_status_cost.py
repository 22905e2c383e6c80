"""status.cost from pods, node prices and the ledger: tables of what is computed and written."""

from __future__ import annotations

from typing import Any

import pytest

from modelfleet.api.types import CostStatus, TokenCounts
from modelfleet.autoscale.policy import PodLoad
from modelfleet.cost import NodePrice, PodInterval, Replica, Tokens, default_api_prices
from modelfleet.handlers.costs import Ledger
from modelfleet.handlers.scrapes import EnginePod, PodSample
from modelfleet.kube.scrape import EngineSample
from modelfleet.status.cost import CostInputs, cost_status, refreshed, rfc3339, written_cost

T0 = 1_800_000_000.0  # unix seconds, a whole minute
ROW = default_api_prices().find("google/gemini-2.5-flash")
PRICES = {
    "l4-a": NodePrice("l4-a", "NVIDIA-L4", 8, 0.70, "price sheet"),
    "l4-b": NodePrice("l4-b", "NVIDIA-L4", 8, 0.50, "annotation"),
    "odd": NodePrice("odd", None, 4, None, "unknown"),
}


def pod(uid: str, node: str | None, gpus: int, start: float, end: float | None = None) -> Any:
    meta: dict[str, Any] = {"uid": uid, "name": uid, "creationTimestamp": rfc3339(start)}
    if end is not None:
        meta["deletionTimestamp"] = rfc3339(end)
    spec: dict[str, Any] = {"containers": [{"resources": {"limits": {"nvidia.com/gpu": gpus}}}]}
    if node:
        spec["nodeName"] = node
    return {"metadata": meta, "spec": spec, "status": {}}


def inputs(now: float, pods: list[Any], **kwargs: Any) -> CostInputs:
    assert ROW is not None
    return CostInputs(
        now=now,
        pods=pods,
        ended=kwargs.get("ended", []),
        prices=PRICES,
        new_tokens=kwargs.get("new_tokens"),
        replicas=kwargs.get("replicas", []),
        observing_since=kwargs.get("observing_since", T0),
        compare_to=ROW,
        late=kwargs.get("late", ()),
    )


@pytest.mark.parametrize(
    ("pods", "hourly", "gpus", "unpriced"),
    [
        ([], 0.0, 0, None),
        ([pod("a", "l4-a", 1, T0)], 0.70, 1, None),
        ([pod("a", "l4-a", 2, T0), pod("b", "l4-b", 2, T0)], 2.40, 4, None),
        # pending: holds no GPU, costs nothing
        ([pod("a", "l4-a", 1, T0), pod("p", None, 1, T0)], 0.70, 1, None),
        # terminating still holds its GPUs
        ([pod("a", "l4-a", 1, T0, end=T0 + 30)], 0.70, 1, None),
        # a node without a price: GPUs counted, not priced
        ([pod("a", "odd", 2, T0), pod("b", "l4-a", 1, T0)], 0.70, 3, 2),
    ],
)
def test_hourly_is_gpus_times_node_price(
    pods: list[Any], hourly: float, gpus: int, unpriced: int | None
) -> None:
    cost = cost_status(None, inputs(T0 + 60, pods))
    assert cost.hourly == pytest.approx(hourly)
    assert cost.gpus == gpus
    assert cost.unpriced_gpus == unpriced


def test_spend_continues_from_the_watermark_and_counts_each_second_once() -> None:
    pods = [pod("a", "l4-a", 2, T0)]  # 1.40 USD/h
    first = cost_status(None, inputs(T0 + 1800, pods))
    assert first.spend == pytest.approx(0.70)
    assert first.accrued_until == rfc3339(T0 + 1800)
    assert first.spend_since == rfc3339(T0)
    again = cost_status(first, inputs(T0 + 3600, pods))
    assert again.spend == pytest.approx(1.40)
    # the same instant twice (a retry after a conflict) adds nothing
    assert cost_status(again, inputs(T0 + 3600, pods)).spend == pytest.approx(1.40)
    # a pod that ended after the watermark: counted up to its end, from the remembered interval
    ended = PodInterval("b", 1, 0.5, T0, T0 + 3600 + 720)
    later = cost_status(again, inputs(T0 + 7200, pods, ended=[ended]))
    assert later.spend == pytest.approx(1.40 + 1.40 + 0.5 * 720 / 3600)


def test_tokens_add_to_the_written_totals_and_price_the_api_equivalent() -> None:
    previous = CostStatus(tokens=TokenCounts(input=1000, output=500))
    cost = cost_status(previous, inputs(T0, [], new_tokens=Tokens(2_000_000, 1_000_000)))
    assert cost.tokens == TokenCounts(input=2_001_000, output=1_000_500)
    assert ROW is not None
    assert cost.api_equivalent is not None
    assert cost.api_equivalent.usd == pytest.approx(
        (2_001_000 * ROW.input + 1_000_500 * ROW.output) / 1e6
    )
    assert cost.api_equivalent.compare_to == ROW.key
    assert cost_status(None, inputs(T0, [])).tokens is None  # never scraped: unknown


def test_per_million_over_the_last_hour() -> None:
    interval = PodInterval("a", 1, 0.70, T0)
    from modelfleet.cost import CounterSample

    samples = [CounterSample(T0 + 600, 0, 0), CounterSample(T0 + 3600, 600_000, 100_000)]
    replicas = [Replica(interval, samples)]
    cost = cost_status(None, inputs(T0 + 3600, [], replicas=replicas, observing_since=T0))
    assert cost.per_million_tokens is not None
    assert cost.per_million_tokens.output == pytest.approx(0.70 / 100_000 * 1e6)
    assert cost.per_million_tokens.total == pytest.approx(0.70 / 700_000 * 1e6)
    assert cost.idle_gpu_hours == 0
    # started before the window: its first sample is a baseline, and nothing moved after it
    older = PodInterval("a", 1, 0.70, T0 - 100)
    idle = [Replica(older, [CounterSample(T0 + 600, 5, 5), CounterSample(T0 + 3600, 5, 5)])]
    quiet = cost_status(None, inputs(T0 + 3600, [], replicas=idle, observing_since=T0))
    assert quiet.per_million_tokens is None  # no traffic: absent
    assert quiet.idle_gpu_hours == pytest.approx(1.0)


WRITTEN = CostStatus(
    hourly=0.7,
    gpus=1,
    spend=1.0,
    spend_since=rfc3339(T0),
    accrued_until=rfc3339(T0),
    tokens=TokenCounts(input=10, output=10),
)


def later(seconds: float, **fields: Any) -> CostStatus:
    """The written block recomputed `seconds` later, with `fields` changed."""
    return WRITTEN.model_copy(update={"accrued_until": rfc3339(T0 + seconds), **fields})


@pytest.mark.parametrize(
    ("fresh", "now", "force", "refresh"),
    [
        # within the period, only time went by: the written time-based fields stay
        (later(60, spend=1.01), 60, False, False),
        # a large relative change still waits for the period (spend of a young deployment)
        (later(60, spend=3.0), 60, False, False),
        # exactly the period: not yet (two writes are always more than a period apart)
        (later(300, spend=1.01), 300, False, False),
        # the period passed and something changed
        (later(301, spend=1.01), 301, False, True),
        # the period passed and nothing changed: nothing to write
        (later(900), 900, False, False),
        # a field appears (the first scrape answered): it waits for the period too
        (later(5, idle_gpu_hours=0.0), 5, False, False),
        (later(301, idle_gpu_hours=0.0), 301, False, True),
        # a pod ended: its time is written while it is known
        (later(5, spend=1.001), 5, True, True),
    ],
)
def test_time_based_fields_are_written_at_most_every_period(
    fresh: CostStatus, now: float, force: bool, refresh: bool
) -> None:
    chosen = written_cost(WRITTEN, fresh, T0 + now, period=300, force=force)
    assert refreshed(chosen, fresh) is refresh
    assert chosen.hourly == fresh.hourly  # never held back
    assert (chosen == fresh) is refresh


def test_hourly_is_written_at_once() -> None:
    fresh = WRITTEN.model_copy(update={"hourly": 1.4, "gpus": 2, "accrued_until": rfc3339(T0 + 30)})
    chosen = written_cost(WRITTEN, fresh, T0 + 30, period=300)
    assert (chosen.hourly, chosen.gpus) == (1.4, 2)
    assert chosen.accrued_until == WRITTEN.accrued_until


# The ledger: counters from scrapes, pods from the watch.


def engine_pod(uid: str) -> EnginePod:
    return EnginePod("ns", uid, uid, "md", "127.0.0.1", "vllm")  # type: ignore[arg-type]


def scrape(ledger: Ledger, uid: str, at: float, prompt: float, generation: float) -> None:
    sample = EngineSample(PodLoad(0, 0, 0.0), prompt, generation)
    ledger.record(PodSample(engine_pod(uid), 0.0, 5.0, sample, at))


LEADER_SINCE = T0 + 1  # when this leader started watching


@pytest.mark.parametrize(
    ("counters", "bound", "watermark", "expected"),
    [
        # bound after what earlier leaders counted: its first sample counts whole
        ([(10, 5), (30, 15)], T0, T0 - 10, Tokens(30, 15)),
        # bound before what an earlier leader counted up to: it counted this pod, so the
        # first sample is a baseline
        ([(10, 5), (30, 15)], T0, T0 + 10, Tokens(20, 10)),
        # an engine restart: the counter went down, the new value counts whole
        ([(10, 5), (30, 15), (4, 2), (6, 3)], T0, T0 - 10, Tokens(36, 18)),
        # no tokens in status yet: nobody counted anything, everything counts
        ([(10, 5)], T0, None, Tokens(10, 5)),
    ],
)
def test_ledger_counts_tokens_with_resets_and_baselines(
    counters: list[tuple[float, float]], bound: float, watermark: float | None, expected: Tokens
) -> None:
    ledger = Ledger(clock=lambda: LEADER_SINCE)
    for step, (prompt, generation) in enumerate(counters):
        scrape(ledger, "p1", T0 + 5 * step, prompt, generation)
    seen = ledger.see(("ns", "md"), [pod("p1", "l4-a", 1, bound)], PRICES, watermark, T0 + 60)
    assert seen.new_tokens == expected


def test_what_earlier_leaders_counted_is_taken_once_per_term() -> None:
    """This leader wrote the first status before the pod's first scrape answered (status had no
    tokens then): the pod is all ours, however late its first sample comes."""
    ledger = Ledger(clock=lambda: T0)
    owner, pods = ("ns", "md"), [pod("p1", "l4-a", 1, T0)]
    assert ledger.see(owner, pods, PRICES, None, T0 + 5).new_tokens is None  # not scraped yet
    scrape(ledger, "p1", T0 + 20, 300, 40)  # requests served before the first answer
    seen = ledger.see(owner, pods, PRICES, T0 + 10, T0 + 21)  # status now has tokens (ours)
    assert seen.new_tokens == Tokens(300, 40)
    ledger.restart()  # a new term: status is what the last one counted
    scrape(ledger, "p1", T0 + 30, 350, 50)
    assert ledger.see(owner, pods, PRICES, T0 + 21, T0 + 31).new_tokens == Tokens(0, 0)


def test_ledger_remembers_what_was_written() -> None:
    ledger = Ledger(clock=lambda: T0)
    owner = ("ns", "md")
    pods = [pod("p1", "l4-a", 1, T0)]
    scrape(ledger, "p1", T0 + 5, 100, 10)
    seen = ledger.see(owner, pods, PRICES, None, T0 + 6)
    assert seen.new_tokens == Tokens(100, 10)
    ledger.written(owner, seen.pending)
    scrape(ledger, "p1", T0 + 10, 150, 20)
    assert ledger.see(owner, pods, PRICES, T0 + 6, T0 + 11).new_tokens == Tokens(50, 10)
    # not written: the next look counts it again
    assert ledger.see(owner, pods, PRICES, T0 + 6, T0 + 12).new_tokens == Tokens(50, 10)


def test_a_pod_gone_from_the_watch_ends_and_is_counted_to_its_end() -> None:
    ledger = Ledger(clock=lambda: T0)
    owner = ("ns", "md")
    terminating = pod("p1", "l4-a", 1, T0, end=T0 + 100)
    assert not ledger.see(owner, [terminating], PRICES, None, T0 + 90).pod_ended
    seen = ledger.see(owner, [], PRICES, None, T0 + 200)
    assert seen.pod_ended
    assert [(i.start, i.end) for i in seen.ended] == [(T0, T0 + 100)]
    # vanished without being seen terminating: counted to when it was last seen
    ledger.see(owner, [pod("p2", "l4-a", 1, T0)], PRICES, None, T0 + 300)
    gone = ledger.see(owner, [], PRICES, None, T0 + 400)
    assert {(i.uid, i.end) for i in gone.ended} == {("p1", T0 + 100), ("p2", T0 + 300)}


def test_a_new_leader_neither_loses_nor_double_counts_beyond_the_bound() -> None:
    """Leader A writes, dies; leader B continues from A's status. Spend equals wall-clock GPU
    time x price except the time of a pod that ended and vanished while nobody led."""
    running = pod("p1", "l4-a", 2, T0)  # 1.40 USD/h, all along
    short = pod("p2", "l4-b", 1, T0)  # 0.50 USD/h, deleted and gone while no leader runs
    a = cost_status(None, inputs(T0 + 600, [running, short]))
    # A crashes at T0 + 700 (its last write was T0 + 600); p2 is deleted at T0 + 800 and gone.
    b = cost_status(a, inputs(T0 + 1200, [running]))  # B starts at T0 + 1200
    wall_clock = 1.40 * 1200 / 3600 + 0.50 * 800 / 3600
    lost = 0.50 * (800 - 600) / 3600  # p2 after the last write: the stated bound
    assert b.spend == pytest.approx(wall_clock - lost)
    assert b.spend <= wall_clock


def test_a_pod_counted_from_zero_brings_its_first_scrape_into_the_last_hour() -> None:
    """Bound before this leader started watching (the window's start), first scraped after:
    what that scrape reports was served from zero and counts in the window."""
    ledger = Ledger(clock=lambda: T0 + 100)
    owner, pods = ("ns", "md"), [pod("p1", "l4-a", 1, T0)]
    scrape(ledger, "p1", T0 + 200, 300, 40)
    scrape(ledger, "p1", T0 + 260, 600, 80)
    seen = ledger.see(owner, pods, PRICES, None, T0 + 300)
    cost = cost_status(
        None, inputs(T0 + 300, pods, replicas=seen.replicas, observing_since=T0 + 100)
    )
    assert cost.per_million_tokens is not None
    window_cost = 0.70 * 200 / 3600  # the window: from T0 + 100
    assert cost.per_million_tokens.output == pytest.approx(window_cost / 80 * 1e6)


def test_a_scrape_in_the_second_before_a_whole_second_now_is_in_the_window() -> None:
    """Status is computed at whole seconds; a scrape recorded 0.6 s earlier (after the last whole
    second) still counts in the last hour, as it does in the totals."""
    ledger = Ledger(clock=lambda: T0)
    owner, pods = ("ns", "md"), [pod("p1", "l4-a", 1, T0)]
    scrape(ledger, "p1", T0 + 5, 100, 10)
    scrape(ledger, "p1", T0 + 20.4, 900, 90)  # most of the load, in the second before now
    seen = ledger.see(owner, pods, PRICES, None, T0 + 20)
    assert seen.new_tokens == Tokens(900, 90)
    cost = cost_status(None, inputs(T0 + 20, pods, replicas=seen.replicas))
    assert cost.per_million_tokens is not None
    assert cost.per_million_tokens.output == pytest.approx(0.70 * 20 / 3600 / 90 * 1e6)


def test_a_term_counts_from_its_whole_second() -> None:
    """A pod bound in the second the term began (its PodScheduled time truncated to the second)
    is counted from that second: the window's cost is its GPU time since then."""
    ledger = Ledger(clock=lambda: T0 + 0.86)
    assert ledger.started == T0
    owner, pods = ("ns", "md"), [pod("p1", "l4-a", 2, T0)]
    scrape(ledger, "p1", T0 + 10, 100, 10)
    seen = ledger.see(owner, pods, PRICES, None, T0 + 24)
    cost = cost_status(
        None, inputs(T0 + 24, pods, replicas=seen.replicas, observing_since=ledger.started)
    )
    assert cost.per_million_tokens is not None
    assert cost.per_million_tokens.output == pytest.approx(1.40 * 24 / 3600 / 10 * 1e6)


def test_a_pod_the_watch_shows_after_an_accrual_of_its_second_is_counted_from_its_start() -> None:
    """p2 was bound at T0 + 10.4 (its PodScheduled time reads T0 + 10); the accrual at T0 + 11
    ran before the watch delivered it. The next written accrual counts it from T0 + 10, once."""
    ledger = Ledger(clock=lambda: T0)
    owner = ("ns", "md")
    p1, p2 = pod("p1", "l4-a", 1, T0), pod("p2", "l4-a", 1, T0 + 10)

    def write(now: float, pods: list[Any], previous: CostStatus | None) -> CostStatus:
        seen = ledger.see(owner, pods, PRICES, None, now)
        cost = cost_status(previous, inputs(now, pods, ended=seen.ended, late=seen.late))
        ledger.written(owner, seen.pending)
        return cost

    first = write(T0 + 11, [p1], None)
    second = write(T0 + 20, [p1, p2], first)
    assert second.spend == pytest.approx(round(0.70 * (20 + 10) / 3600, 6))
    third = write(T0 + 30, [p1, p2], second)
    assert third.spend == pytest.approx(round(0.70 * (30 + 20) / 3600, 6))


def test_a_new_term_does_not_count_again_what_the_last_one_counted() -> None:
    """Every pod is new to a new leader: those of its first look are not late."""
    ledger = Ledger(clock=lambda: T0 + 100)
    owner, pods = ("ns", "md"), [pod("p1", "l4-a", 1, T0)]
    seen = ledger.see(owner, pods, PRICES, T0 + 90, T0 + 101, accrued_until=T0 + 90)
    assert seen.late == []
    # bound before the last term's watermark, seen only now: that term counted it up to there
    both = [*pods, pod("p2", "l4-a", 1, T0 + 50)]
    seen = ledger.see(owner, both, PRICES, T0 + 90, T0 + 110, accrued_until=T0 + 101)
    assert [(i.uid, i.start) for i in seen.late] == [("p2", T0 + 90)]


def test_late_time_waits_for_a_written_accrual() -> None:
    """Computed but not written (the period had not passed): the late pod stays late."""
    ledger = Ledger(clock=lambda: T0)
    owner = ("ns", "md")
    ledger.see(owner, [pod("p1", "l4-a", 1, T0)], PRICES, None, T0 + 11)
    both = [pod("p1", "l4-a", 1, T0), pod("p2", "l4-a", 1, T0 + 10)]
    assert [i.start for i in ledger.see(owner, both, PRICES, None, T0 + 20).late] == [T0 + 10]
    assert [i.start for i in ledger.see(owner, both, PRICES, None, T0 + 25).late] == [T0 + 10]
    ledger.written(owner, {})
    assert ledger.see(owner, both, PRICES, None, T0 + 30).late == []
