"""When the time-based cost fields are written: every 5 minutes at most, or on a 1% change."""

from __future__ import annotations

import pytest

from modelfleet.cost.throttle import should_write

WRITTEN = {"spend": 100.0, "tokensOutput": 2_000_000.0, "perMillionOutput": 1.5}


def changed(**values: float | None) -> dict[str, float | None]:
    return {**WRITTEN, **values}


@pytest.mark.parametrize(
    ("written", "new", "last_write", "now", "expected"),
    [
        pytest.param(None, WRITTEN, None, 0, True, id="never-written"),
        pytest.param(WRITTEN, WRITTEN, 0, 10_000, False, id="nothing-changed-hours-later"),
        pytest.param(WRITTEN, changed(spend=100.5), 0, 60, False, id="half-percent-after-1-min"),
        pytest.param(WRITTEN, changed(spend=100.5), 0, 299, False, id="just-before-5-min"),
        pytest.param(WRITTEN, changed(spend=100.5), 0, 300, True, id="at-5-min"),
        pytest.param(WRITTEN, changed(spend=101.0), 0, 1, True, id="one-percent-at-once"),
        pytest.param(WRITTEN, changed(perMillionOutput=1.4), 0, 1, True, id="falls-by-7-percent"),
        pytest.param(
            {**WRITTEN, "idleGpuHours": 0.0},
            {**WRITTEN, "idleGpuHours": 0.001},
            0,
            1,
            True,
            id="any-change-from-zero",
        ),
        pytest.param(WRITTEN, changed(perMillionOutput=None), 0, 1, True, id="field-disappears"),
        pytest.param(
            changed(perMillionOutput=None), WRITTEN, 0, 1, True, id="field-appears-with-traffic"
        ),
        pytest.param(
            WRITTEN, {**WRITTEN, "apiEquivalent": 3.0}, 0, 1, True, id="new-field-not-written"
        ),
        pytest.param(WRITTEN, changed(spend=100.1), 600, 500, True, id="clock-behind-last-write"),
        pytest.param(WRITTEN, WRITTEN, 600, 500, False, id="clock-behind-nothing-changed"),
        pytest.param(WRITTEN, changed(spend=100.1), None, 5, True, id="write-time-unknown"),
    ],
)
def test_should_write(
    written: dict[str, float | None] | None,
    new: dict[str, float | None],
    last_write: float | None,
    now: float,
    expected: bool,
) -> None:
    assert should_write(written, new, last_write, now) is expected


def test_steady_state_writes_once_per_period() -> None:
    """A deployment spending 10 USD/h for a day, 2 days in: one write per 5 minutes, not per
    30 s resync."""
    spend, written, last, writes = 480.0, None, None, 0
    for step in range(24 * 120):  # every 30 s for a day
        now = step * 30.0
        spend += 10 / 120
        if should_write(written, {"spend": spend}, last, now):
            written, last, writes = {"spend": spend}, now, writes + 1
    assert writes == pytest.approx(24 * 12, abs=2)
